from fusion_tuner.cli import main

main()
