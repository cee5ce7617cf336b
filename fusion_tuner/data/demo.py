"""The embedded demo dataset: deterministic synthetic crystals with a synthetic target.

**The target is synthetic.** It imitates a band gap's behaviour so that the whole pipeline
(graphs, text, fusion, tuning, analysis) can be exercised offline in minutes; it says nothing
about real materials. For real work use ``dataset=jarvis`` or ``dataset=folder``.

Crystals come from ten prototype families (rock salt, CsCl, zinc blende, wurtzite, fluorite,
cubic perovskite, rutile, and bcc/fcc/hcp elements). Each draws elements for its sites, sets the
lattice so that nearest neighbours sit at the sum of their covalent radii, multiplies it by a
random strain (isotropic up to 9 % plus anisotropic up to 3 %) and moves every atom by a small
random displacement.

The target ``synthetic_gap`` (in "eV") is, with the prototype's coordination number ``CN`` of
its main cation, the electronegativity difference ``dx`` of the bonded pair, the bond strain
``s`` (shortest bonded distance over the sum of covalent radii) and the displacement amplitude
``u`` (Angstrom)::

    gap = max(0, 4 tanh(dx / 1.5) exp(-(CN - 4) / 4) exp(-9 (s - 1)) - 0.5 - 4 u) + noise,
    noise ~ N(0, demo_noise^2)

Elements (dx = 0) are metals with gap 0 (plus noise clipped at 0 for them). The geometry enters
through ``CN`` (the prototype), ``s`` and ``u``; the composition through ``dx``. Because the same
elements appear in several prototypes and strains, a linear fit on composition alone cannot
recover the target (see ``tests/unit/test_demo.py``), while graph and text both carry the signal.

The description of each crystal (its text) states formula, prototype, crystal system, lattice
parameters and the shortest bond length, as a crystallographer's summary would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fusion_tuner.data.records import Crystal

GENERATOR_VERSION = 1

# symbol: (electronegativity (Pauling), covalent radius (Angstrom))
ELEMENTS: dict[str, tuple[float, float]] = {
    "Li": (0.98, 1.28),
    "Na": (0.93, 1.66),
    "K": (0.82, 2.03),
    "Rb": (0.82, 2.20),
    "Cs": (0.79, 2.44),
    "Be": (1.57, 0.96),
    "Mg": (1.31, 1.41),
    "Ca": (1.00, 1.76),
    "Sr": (0.95, 1.95),
    "Ba": (0.89, 2.15),
    "Zn": (1.65, 1.22),
    "Cd": (1.69, 1.44),
    "Al": (1.61, 1.21),
    "Ga": (1.81, 1.22),
    "In": (1.78, 1.42),
    "Ti": (1.54, 1.60),
    "Zr": (1.33, 1.75),
    "Sn": (1.96, 1.39),
    "Pb": (2.33, 1.46),
    "Si": (1.90, 1.11),
    "Ge": (2.01, 1.20),
    "Cu": (1.90, 1.32),
    "Ag": (1.93, 1.45),
    "Au": (2.54, 1.36),
    "Fe": (1.83, 1.32),
    "Cr": (1.66, 1.39),
    "Mo": (2.16, 1.54),
    "W": (2.36, 1.62),
    "Ni": (1.91, 1.24),
    "Pd": (2.20, 1.39),
    "Pt": (2.28, 1.36),
    "Co": (1.88, 1.26),
    "F": (3.98, 0.57),
    "Cl": (3.16, 1.02),
    "Br": (2.96, 1.20),
    "I": (2.66, 1.39),
    "O": (3.44, 0.66),
    "S": (2.58, 1.05),
    "Se": (2.55, 1.20),
    "Te": (2.10, 1.38),
    "N": (3.04, 0.71),
    "P": (2.19, 1.07),
    "As": (2.18, 1.19),
    "Sb": (2.05, 1.39),
}

ALKALI = ("Li", "Na", "K", "Rb", "Cs")
ALKALINE = ("Be", "Mg", "Ca", "Sr", "Ba", "Zn", "Cd")
TRIVALENT = ("Al", "Ga", "In")
TETRAVALENT = ("Ti", "Zr", "Sn", "Pb", "Si", "Ge")
HALOGEN = ("F", "Cl", "Br", "I")
CHALCOGEN = ("O", "S", "Se", "Te")
PNICTOGEN = ("N", "P", "As", "Sb")
METALS = ("Li", "Na", "K", "Al", "Cu", "Ag", "Au", "Fe", "Cr", "Mo", "W", "Ni", "Pd", "Pt", "Co")

SQ3 = math.sqrt(3.0)


@dataclass(frozen=True)
class Prototype:
    """A structure family: lattice (in units of a), fractional sites, and bonding geometry."""

    name: str
    system: str
    spacegroup: str
    lattice: np.ndarray  # (3, 3) in units of a
    sites: tuple[tuple[int, tuple[float, float, float]], ...]  # (species slot, frac coords)
    pools: tuple[tuple[str, ...], ...]  # element pool per species slot
    nn: float  # nearest-neighbour distance in units of a
    cn: int  # coordination number of slot 0
    bonded: tuple[int, int]  # the species slots forming the nearest-neighbour bond


def _fcc(a: float = 1.0) -> np.ndarray:
    return 0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])


def _bcc() -> np.ndarray:
    return 0.5 * np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, -1.0]])


def _hex(c_over_a: float) -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [-0.5, SQ3 / 2, 0.0], [0.0, 0.0, c_over_a]])


CATIONS_1_2 = ALKALI + ALKALINE
ANIONS_1_2 = HALOGEN + CHALCOGEN
RUTILE_U = 0.305
WURTZITE_C = math.sqrt(8.0 / 3.0)

PROTOTYPES: tuple[Prototype, ...] = (
    Prototype(
        "rock-salt",
        "cubic",
        "Fm-3m",
        _fcc(),
        ((0, (0, 0, 0)), (1, (0.5, 0.5, 0.5))),
        (CATIONS_1_2, ANIONS_1_2),
        0.5,
        6,
        (0, 1),
    ),
    Prototype(
        "CsCl",
        "cubic",
        "Pm-3m",
        np.eye(3),
        ((0, (0, 0, 0)), (1, (0.5, 0.5, 0.5))),
        ((*ALKALI, "Ag", "Cu"), HALOGEN),
        SQ3 / 2,
        8,
        (0, 1),
    ),
    Prototype(
        "zinc-blende",
        "cubic",
        "F-43m",
        _fcc(),
        ((0, (0, 0, 0)), (1, (0.25, 0.25, 0.25))),
        (ALKALINE + TRIVALENT, CHALCOGEN + PNICTOGEN),
        SQ3 / 4,
        4,
        (0, 1),
    ),
    Prototype(
        "wurtzite",
        "hexagonal",
        "P6_3mc",
        _hex(WURTZITE_C),
        (
            (0, (1 / 3, 2 / 3, 0.0)),
            (0, (2 / 3, 1 / 3, 0.5)),
            (1, (1 / 3, 2 / 3, 0.375)),
            (1, (2 / 3, 1 / 3, 0.875)),
        ),
        (ALKALINE + TRIVALENT, CHALCOGEN + PNICTOGEN),
        0.375 * WURTZITE_C,
        4,
        (0, 1),
    ),
    Prototype(
        "fluorite",
        "cubic",
        "Fm-3m",
        _fcc(),
        ((0, (0, 0, 0)), (1, (0.25, 0.25, 0.25)), (1, (0.75, 0.75, 0.75))),
        (ALKALINE + TETRAVALENT, (*HALOGEN, "O")),
        SQ3 / 4,
        8,
        (0, 1),
    ),
    Prototype(
        "perovskite",
        "cubic",
        "Pm-3m",
        np.eye(3),
        (
            (0, (0.5, 0.5, 0.5)),
            (1, (0, 0, 0)),
            (2, (0.5, 0.5, 0.0)),
            (2, (0.5, 0.0, 0.5)),
            (2, (0.0, 0.5, 0.5)),
        ),
        (TETRAVALENT + TRIVALENT, ("Ca", "Sr", "Ba", "K", "Na"), ("O", "F")),
        0.5,
        6,
        (0, 2),
    ),
    Prototype(
        "rutile",
        "tetragonal",
        "P4_2/mnm",
        np.diag([1.0, 1.0, 0.644]),
        (
            (0, (0, 0, 0)),
            (0, (0.5, 0.5, 0.5)),
            (1, (RUTILE_U, RUTILE_U, 0)),
            (1, (1 - RUTILE_U, 1 - RUTILE_U, 0)),
            (1, (0.5 + RUTILE_U, 0.5 - RUTILE_U, 0.5)),
            (1, (0.5 - RUTILE_U, 0.5 + RUTILE_U, 0.5)),
        ),
        ((*TETRAVALENT, "Mg", "Zn"), ("O", "F", "S")),
        math.sqrt(2) * RUTILE_U,
        6,
        (0, 1),
    ),
    Prototype("bcc", "cubic", "Im-3m", _bcc(), ((0, (0, 0, 0)),), (METALS,), SQ3 / 2, 8, (0, 0)),
    Prototype(
        "fcc", "cubic", "Fm-3m", _fcc(), ((0, (0, 0, 0)),), (METALS,), 1 / math.sqrt(2), 12, (0, 0)
    ),
    Prototype(
        "hcp",
        "hexagonal",
        "P6_3/mmc",
        _hex(1.633),
        ((0, (1 / 3, 2 / 3, 0.25)), (0, (2 / 3, 1 / 3, 0.75))),
        (METALS,),
        1.0,
        12,
        (0, 0),
    ),
)


def synthetic_gap(dx: float, cn: int, strain: float, displacement: float) -> float:
    """The noise-free demo target (see the module docstring)."""
    ionic = 4.0 * math.tanh(dx / 1.5) * math.exp(-(cn - 4) / 4) * math.exp(-9.0 * (strain - 1.0))
    return max(0.0, ionic - 0.5 - 4.0 * displacement)


def _formula(elements: list[str]) -> str:
    counts: dict[str, int] = {}
    for el in elements:
        counts[el] = counts.get(el, 0) + 1
    g = math.gcd(*counts.values())
    return "".join(f"{el}{'' if n // g == 1 else n // g}" for el, n in counts.items())


def _describe(proto: Prototype, elements: list[str], lattice: np.ndarray, bond: float) -> str:
    a, b, c = np.linalg.norm(lattice, axis=1)
    formula = _formula(elements)
    i, j = proto.bonded
    species = list(dict.fromkeys(elements))
    centre = elements[[s for s, _ in proto.sites].index(i)]
    partner = elements[[s for s, _ in proto.sites].index(j)]
    chi = ", ".join(f"{el} {ELEMENTS[el][0]:.2f}" for el in species)
    return (
        f"{formula} crystallizes in the {proto.system} {proto.spacegroup} space group "
        f"with the {proto.name} structure. Each {centre} atom is bonded to {proto.cn} {partner} "
        f"atoms at {bond:.2f} Å. The lattice lengths are {a:.2f}, {b:.2f}, {c:.2f} Å. "
        f"Electronegativities: {chi}."
    )


def _make_crystal(index: int, proto: Prototype, rng: np.random.Generator, noise: float) -> Crystal:
    slots = [str(rng.choice(pool)) for pool in proto.pools]
    if len(set(slots)) < len(slots) and proto.bonded[0] != proto.bonded[1]:
        slots = [str(rng.choice(pool)) for pool in proto.pools]  # one redraw; duplicates allowed
    elements = [slots[s] for s, _ in proto.sites]
    i, j = proto.bonded
    r_sum = ELEMENTS[slots[i]][1] + ELEMENTS[slots[j]][1]
    a = r_sum / proto.nn
    strain_axes = 1.0 + rng.uniform(-0.09, 0.09) + rng.uniform(-0.03, 0.03, size=3)
    lattice = proto.lattice * a * strain_axes[None, :]  # scales Cartesian x, y, z
    frac = np.array([site for _, site in proto.sites], dtype=np.float64)
    displacement = float(rng.uniform(0.0, 0.08))
    cart = frac @ lattice + rng.normal(0.0, displacement / SQ3, size=frac.shape)
    # Bond strain, measured: shortest distance between the bonded species over their radii.
    deltas = cart[:, None, :] - cart[None, :, :]
    shifts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    images = deltas[None] + (shifts @ lattice)[:, None, None, :]
    dist = np.linalg.norm(images, axis=-1)
    slot_of = np.array([s for s, _ in proto.sites])
    pair = (slot_of[:, None] == i) & (slot_of[None, :] == j)
    dist = np.where(pair[None] & (dist > 1e-6), dist, np.inf)
    bond = float(dist.min())
    dx = abs(ELEMENTS[slots[i]][0] - ELEMENTS[slots[j]][0])
    clean = synthetic_gap(dx, proto.cn, bond / r_sum, displacement)
    target = clean + float(rng.normal(0.0, noise))
    target = max(target, 0.0) if dx == 0 else target
    return Crystal(
        id=f"demo-{index:05d}",
        lattice=lattice,
        cart=cart,
        elements=elements,
        target=target,
        text=_describe(proto, elements, lattice, bond),
    )


def generate_demo(n: int = 600, seed: int = 0, noise: float = 0.05) -> list[Crystal]:
    """Generate ``n`` crystals, cycling through the prototype families (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    return [
        _make_crystal(index, PROTOTYPES[index % len(PROTOTYPES)], rng, noise) for index in range(n)
    ]
