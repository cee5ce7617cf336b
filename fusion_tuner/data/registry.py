"""The public data sets that ``python -m fusion_tuner.data download NAME`` fetches.

Every file has its source URL, pinned to a commit where the source is a git repository, and
what is known to check it by:

* ``sha256`` and ``size``: computed here from the exact file, read out of the source
  repository's git objects at the pinned commit (for ``perov_5/val.csv`` and the five
  leaderboard files that are also bundled, the same bytes as the bundled samples);
* ``git_blob``: the git blob id (SHA-1 of ``"blob <size>\\0" + content``) that the source
  repository's tree at the pinned commit records, for files whose bytes were not at hand when
  this was written (CDVAE's train splits, mp_20): a downloaded file is checked against it;
* neither: the JARVIS figshare zips, whose URLs come from jarvis-tools and which no local copy
  could check. They are downloaded unverified, with a warning that prints their SHA-256.

Nothing here is a guessed value: a checksum that could not be computed is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

CDVAE_COMMIT = "f857f598d6f6cca5dc1ea0582d228f12dcc2c2ea"  # txie-93/cdvae, 2022-04-20
LEADERBOARD_COMMIT = "57afc55f94c8a6f4562f73a3173968cd4b2f83b1"  # usnistgov/jarvis_leaderboard

MIT_CDVAE = "MIT (CDVAE, Copyright (c) 2021 Tian Xie, Xiang Fu)"
NIST_TERMS = (
    "NIST JARVIS terms of use: free to use, copy, modify and redistribute, keeping the notice "
    "and the warranty disclaimer"
)
CITE_JARVIS = "Choudhary et al., npj Comput. Mater. 6, 173 (2020)"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: where it comes from and how it is checked."""

    url: str
    name: str  # the file name at the destination
    size: int | None = None  # bytes; None: unknown
    sha256: str | None = None
    git_blob: str | None = None


@dataclass(frozen=True)
class DataSet:
    name: str
    description: str
    licence: str
    citation: str
    files: tuple[RemoteFile, ...]
    # where it goes by default: "data" (<data dir>/NAME) or "jarvis" (the JARVIS store folder
    # that dataset=jarvis reads: dataset.jarvis_dir's default)
    home: str = "data"
    # the jarvis.db.figshare name (home="jarvis")
    figshare: str | None = None
    # a bundled sample that holds some of these files
    sample: str | None = None

    @property
    def short_licence(self) -> str:
        return "MIT" if self.licence.startswith("MIT") else "NIST JARVIS terms of use"

    @property
    def size(self) -> int | None:
        """Total bytes, or None when a file's size is unknown."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)


def _cdvae(
    split_set: str, name: str, size: int | None, sha256: str | None, blob: str
) -> tuple[str, RemoteFile]:
    url = f"https://raw.githubusercontent.com/txie-93/cdvae/{CDVAE_COMMIT}/data/{split_set}/{name}"
    return split_set, RemoteFile(url, name, size, sha256, blob)


def _lb(kind: str, name: str, size: int, sha256: str, blob: str) -> RemoteFile:
    url = (
        f"https://raw.githubusercontent.com/usnistgov/jarvis_leaderboard/{LEADERBOARD_COMMIT}/"
        f"jarvis_leaderboard/benchmarks/AI/{kind}/{name}"
    )
    # named as in the bundled sample: <kind>_<benchmark>.json.zip
    return RemoteFile(url, f"{kind}_{name}", size, sha256, blob)


_CDVAE_FILES = [
    # perov_5 val.csv is the bundled sample's file (sample://perov5_castelli, unzipped).
    _cdvae("perov_5", "train.csv", None, None, "0769074b5d51d293b765c4371b8f55c468c9c9f2"),
    _cdvae(
        "perov_5",
        "val.csv",
        3673814,
        "326f401219901270374b71e2faff63df3a29a99fd26f469993b9f476b693daf2",
        "4a2c8dde98347dd0e01fa83dcf3982c2abe98f9f",
    ),
    _cdvae(
        "perov_5",
        "test.csv",
        3671842,
        "a85878c685037f0a578257f6d4fcdde00e968dbab73c5f1e90ecef65218513f6",
        "d3c5d5af4b27a2a139149f2bb73c8a3dba9d8ac1",
    ),
    _cdvae("mp_20", "train.csv", None, None, "b1c9d498565ac2fd8d075a51ff2ef5e51ba6c21f"),
    _cdvae("mp_20", "val.csv", None, None, "7efe4d7ebeb4f460ceaad35e5326c42111d9c9a1"),
    _cdvae("mp_20", "test.csv", None, None, "5dc643041df53f5ce4970a79930ad262b4f07acd"),
    _cdvae("carbon_24", "train.csv", None, None, "5e7ae970fbad8ddc46b6963e8cd6e425f11783a6"),
    _cdvae(
        "carbon_24",
        "val.csv",
        2321923,
        "36c00689cd63073c954a58bc6ed6e2adb7aeed5a630c994970959a1babffd50e",
        "b3e29b927883642426ca1d9632d00359b412742b",
    ),
    _cdvae(
        "carbon_24",
        "test.csv",
        2319350,
        "386b17c08816f434818d51e46687bf72ff3f92348f3ba24823e4758f1fe8a969",
        "9beca843fde489de1fe288b32f9e3ff710d42803",
    ),
]

_CDVAE_ABOUT = {
    "perov_5": "18,928 ABX3 perovskites (Castelli et al.), CSV with a CIF column; target heat_ref (eV/atom)",
    "mp_20": "45,231 Materials Project crystals of up to 20 atoms, CSV with a CIF column; CDVAE's target formation_energy_per_atom",
    "carbon_24": "10,153 carbon structures of 6-24 atoms, CSV with a CIF column; energy_per_atom",
}
_CDVAE_CITE = {
    "perov_5": "Xie et al., ICLR 2022 (CDVAE); Castelli et al., Energy Environ. Sci. 5, 9034 and 5814 (2012)",
    "mp_20": "Xie et al., ICLR 2022 (CDVAE); Jain et al., APL Mater. 1, 011002 (2013)",
    "carbon_24": "Xie et al., ICLR 2022 (CDVAE); Pickard, AIRSS data for carbon at 10 GPa (2020)",
}

DATASETS: dict[str, DataSet] = {
    s: DataSet(
        name=s,
        description=f"CDVAE {s} train/val/test ({_CDVAE_ABOUT[s]})",
        licence=MIT_CDVAE,
        citation=_CDVAE_CITE[s],
        files=tuple(f for k, f in _CDVAE_FILES if k == s),
        sample="perov5_castelli" if s == "perov_5" else None,
    )
    for s in ("perov_5", "mp_20", "carbon_24")
}
DATASETS["dft_3d"] = DataSet(
    name="dft_3d",
    description="JARVIS-DFT 3D, the release jarvis-tools loads as dft_3d (figshare zip)",
    licence=NIST_TERMS,
    citation="Choudhary et al., Comput. Mater. Sci. (2025), doi:10.1016/j.commatsci.2025.114063; "
    + CITE_JARVIS,
    files=(
        RemoteFile("https://ndownloader.figshare.com/files/64391379", "jdft_3d-9-24-2025.json.zip"),
    ),
    home="jarvis",
    figshare="dft_3d",
)
DATASETS["dft_3d_2021"] = DataSet(
    name="dft_3d_2021",
    description="JARVIS-DFT 3D, the 2021 release (55,713 records) the leaderboard's splits come from",
    licence=NIST_TERMS,
    citation=CITE_JARVIS,
    files=(
        RemoteFile("https://ndownloader.figshare.com/files/29204826", "jdft_3d-8-18-2021.json.zip"),
    ),
    home="jarvis",
    figshare="dft_3d_2021",
)
DATASETS["jarvis_leaderboard_dft3d"] = DataSet(
    name="jarvis_leaderboard_dft3d",
    description="JARVIS-Leaderboard dft_3d benchmark files: train/val/test ids with labels, "
    "every SinglePropertyPrediction property plus AtomGen Tc_supercon (for dataset.split_file)",
    licence=NIST_TERMS,
    citation="Choudhary et al., npj Comput. Mater. 10, 93 (2024) (JARVIS-Leaderboard); "
    + CITE_JARVIS,
    files=(
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_Tc_supercon.json.zip",
            3951,
            "e34fe109057b9dd7b4ae50b18fdec70cc156b6a994a02ec6f57f5c365f8a06dc",
            "55bdabee28d445330ad44bb7a49623a533eeaf23",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_Tc_supercon_hydride.json.zip",
            11274,
            "c553dda2d5657e6f588ebc47b9c6ae724aacabd1207dda66e3e73e0771aa0920",
            "0f88c190248c9ee062dcc92e5c89c3df0b5b8353",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_Tc_supercon_hydride_plus_bulk.json.zip",
            21352,
            "f2a5aa6203c4612e3febfde83e242fdfee73b8914cf0ee0da757de5fe2c7c344",
            "f0e2c559602e86d8ad66040b63314ff403cb4c16",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_avg_elec_mass.json.zip",
            72851,
            "9b2b493db8a0fe49395050c120e7986d5932d91cccf52509ee87520ebb4c229d",
            "56a4e85cbeeb14b8490e487722380e7f1b6b2c25",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_avg_hole_mass.json.zip",
            73668,
            "f24307e8caa3fa8b9562bde27bcdef6d4d42d40d156700b1364e94fccd357afb",
            "2b795c9537549ba52b7bf7328bd6263ea52b3dd6",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_bulk_modulus_kv.json.zip",
            125080,
            "5535abd36e95770708fb59404174a0de1b6ff9245ac5714dcffcc1ff57fb7239",
            "cfdecfd865d8b18513029f27843a24909e66f482",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_a.json.zip",
            1011,
            "3c3336d965deefc596ec1fccba87056b9f9a28fb14c7aa97d00139cefe729fd8",
            "e9ba8715a62db762ad0273a012dfa1cb3c45643a",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_b.json.zip",
            1011,
            "7adcab5019c34c2db367d82b7c2f3b0c40727f6ba9b1e916384af5b7059e57c3",
            "7b64697f151f6d02c76b6225cdc1fc1361e02bf3",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_c.json.zip",
            1000,
            "13b37bca4c0f22f79650c66a23c1e70ccef9ac691c27c7e88cd85f1dc749341f",
            "42afd05528e059c58387fd310727edd17fdd66aa",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_c11.json.zip",
            859,
            "26550a5899b21af11ad7930731af26d913d1d028e09c90287da52bfb256a06a9",
            "4d3b0ddc88bd8b8354490c7bd15f525878f656ab",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_c44.json.zip",
            823,
            "3aa70672a0708fc4fa99b567267c492fa6b7575a461fe80b2cfb619da365a215",
            "747bd4639f34a5a3c86d97b8a7e94c62bc92d1d1",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_form_en.json.zip",
            925,
            "bf596276759e0cdea5634567b0fdab1fe6262e26f24f4091977b8521dbc506ce",
            "5655bebe7bbfe70ba4bdf7d370599ad96e80893a",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_kv.json.zip",
            909,
            "3f309e5dc0e3c7062f60df11ed4f04a7227ddfc677daf7db623b8bfb513c8756",
            "15ecb0edf55dedf092d35e762e3572eb3361f55e",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_surf_en.json.zip",
            1533,
            "f3208899135d761b60a2ef40aa4849f4248282abbba0cf0ab48f3073a32a9c65",
            "46caaf9856a10910f5f4fd19a86371999f6485a3",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_vac_en.json.zip",
            698,
            "45f1847650f5a9caa442c643e1126f5521b39c99e7c5394e0e6501edbb7ee92b",
            "4cec7ea5715e4be78547c7311a6ec99cc316a526",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_chipsff_vol.json.zip",
            1646,
            "b8a45b007223b961542d923e45e6dc7748de74e27555555feda46d31ecc071aa",
            "11ba29fe92932aced19736095620744edbe83b7e",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_dfpt_piezo_max_dielectric.json.zip",
            48039,
            "3dc7b8badbeabb9d3d03c01fd66e7f6933169b41102e097913beee59c2f5b721",
            "d37714279e74e729406bbeefe63ec75cac0a8195",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_dfpt_piezo_max_dij.json.zip",
            27351,
            "54840fc9d40a2ed6c3ee75db1bd3635522485127bbeaad9dd160226ca33844b8",
            "bff10fc795d26cd891cd9990d20f1a7b2f4d2f91",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_ehull.json.zip",
            590007,
            "25b7ca5c43f5dd54fc98ff01e46bc42033e22d0b9e20048d90d628ea35e169ff",
            "5215c277242b223e006d8853d5353f3bcb83be94",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_encut.json.zip",
            236486,
            "1c6a670dc7134eef85abfbd775c7edcc18ddb060fccc2b94acea62af4bb309a3",
            "3cb2b225db6efbcac2d9e059a536da7b80796de0",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_epsx.json.zip",
            343145,
            "ba1989e259653c3a923525d1e553cfa025c99f3957a2395a38f2e9e7a514aa78",
            "705b8bc926465588b42f48f573abab48fb1bc7b9",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_epsy.json.zip",
            342854,
            "fa1ca4657cd74cb7dfaf4a8ed49164f0fa980b927ea787218349cc9428df7329",
            "e7613c0f23d219e55e8d8309951189d06a019153",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_epsz.json.zip",
            342056,
            "da92c42a6e49a53734cd97fd8cf87da9875be197b2755e0ed9793755e7fc778a",
            "3b8e8b0ccb6f30f6cc8d7105e356f6f59b222539",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_exfoliation_energy.json.zip",
            5502,
            "d7a3127002098c3da40292bee8d78de0e45ca42bef81adc73a07bc47e900a9a4",
            "f0701e56ebec6a016ef3bb99307333316c9e6248",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_formation_energy_peratom.json.zip",
            408864,
            "ffaef5d3512a29c93f005c8b9f014b467dfa561b1c23632524ff91bbfa6f759f",
            "3439c6d8b96c9b84487211c444e9b94f76784cf4",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_kpoint_length_unit.json.zip",
            239120,
            "35e305fa449118b0c3991c155c866fabb943854563e6df32e0ce393ca9259e78",
            "23780834fe239a33281eed3ced28f28afee77c16",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_magmom_oszicar.json.zip",
            225224,
            "e149212f11e14504d4949d7325e6a3d6fd4377bbc8393fa3feb6fcad4546ec79",
            "cdc5b4539aac4297a9528f324e45744e4b29afe2",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_max_efg.json.zip",
            81561,
            "688ca60548d0f72d40d92a46511165191100fc33ec53b87e5a648eb6fc9a99a7",
            "5b4c97ac63295fa2840a7fccf6e1c7d99a46df66",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_mbj_bandgap.json.zip",
            91819,
            "7aee71bfea2f67e10a9aad4cc6b83636b58e09b46e01c713a82a333e9632fd95",
            "badb0c122b0113135d069f125f61f44ba5c911b9",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_mepsx.json.zip",
            127200,
            "fa2e424bfa9e692b3813b5b736258f70dea18484ccd6de91a027c162a02e3ffd",
            "5368acc2cdc605ea13d4a6b9d3190bd351caca04",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_mepsy.json.zip",
            127220,
            "ea143d8361781dca4a55e73f1642caf645bd521ece16d8674ea0bbe1ef00f5c1",
            "b6868a23fe446dbd07d32556f1789030dacecd29",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_mepsz.json.zip",
            126775,
            "e0bfa7e4e178bdeb99267df17dd7612ded113f61c83f3951c7500fa74c497b76",
            "f7d459b1b3035e83937c545c9321176f59f7bf33",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_n_Seebeck.json.zip",
            180209,
            "6a55be2a7fb180128a571c5f151f6531bd0caa88c64327200e75cae278c9a107",
            "6f029a369c1c5dd93c714d4ab451ccb8ef71f945",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_n_powerfact.json.zip",
            190171,
            "3d61131f5c413c83c031ccfbd29ff485973d851a673e3e851f31e805590dbf4b",
            "6be8c1bdb3f42cac3deacbb451b6580eb185d688",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_optb88vdw_bandgap.json.zip",
            260687,
            "6d9f7f6a7c321497649afa10f11e5e3b17f5ae7de4ff508e5e1ec2ee7cfb59e9",
            "7fb7e1a04267376ce488879cd43de1718bad9109",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_optb88vdw_total_energy.json.zip",
            420696,
            "8bfde50dc6a22b5249d3b818082dadfb0171ee0416790f97d25e7d9e9161a8af",
            "3d2421022f9b8ea4a2c4cc620a9112a5a6de5dc9",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_ph_heat_capacity.json.zip",
            156582,
            "b521d42eb722ea82f2dc4ec7e9aee84cb848b9e0eefb65c634c6c16797216ab7",
            "4d13c90dfbccb91da9ab1ca298ada950cdf840e9",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_shear_modulus_gv.json.zip",
            122449,
            "9fffd5990b7d695636194dcfd55b154782e58c7befdcb5713ec1248b4e510d5a",
            "34bf013bdba788b8ac40112322e4a922e92a3e58",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_slme.json.zip",
            48039,
            "f929bd463c98af317d98de6641c48f6347e6a069af03a3d6266c3bd3cafc049a",
            "e2b1ed26bd859735da7b53cba57fe39296fa26fe",
        ),
        _lb(
            "SinglePropertyPrediction",
            "dft_3d_spillage.json.zip",
            62957,
            "495bed4377f32e4495e399920f90a88ac097470e793379b775d14af209c8e36a",
            "61b34b5bcc1353f7ced7664114788c6eca8fcb4d",
        ),
        _lb(
            "AtomGen",
            "dft_3d_Tc_supercon.json.zip",
            88449,
            "dcbe3bfedf21a66dd8b4c02589659f1ba6e25bf0fd1e805e358f02a4c2c6b615",
            "aec1739fcfaaf6e8f15512626a495b415a7425c6",
        ),
    ),
    sample="jarvis_leaderboard_dft3d",
)

# the licence of each bundled sample (fusion_tuner/data/samples/<name>; notices in that folder)
SAMPLE_LICENCES = {
    "perov5_castelli": "MIT (CDVAE); cite Castelli et al. 2012",
    "jarvis_dft3d_alignn_sample50": "NIST JARVIS terms of use",
    "jarvis_dft3d_mini": "NIST JARVIS terms of use (derived)",
    "jarvis_leaderboard_dft3d": "NIST JARVIS terms of use",
}
