"""Crystal structures in the forms data sets ship: CIF, POSCAR, JARVIS and pymatgen dicts.

Every reader returns ``(lattice, cart, elements)``: lattice vectors as rows (3, 3) and Cartesian
positions (N, 3), both in Angstrom, and N element symbols. A structure that cannot be used
raises :class:`StructureError` with the reason; callers count it as dropped.

**CIF** is read in process with gemmi (``gemmi.cif.read_string`` then
``make_small_structure_from_block``): no shell, no temporary file. The symmetry operations of the
CIF (``_space_group_symop_operation_xyz`` or ``_symmetry_equiv_pos_as_xyz``, any setting) are
applied, or, when the CIF lists none, those of its Hall or Hermann-Mauguin symbol; images closer
than gemmi's special-position tolerance are merged. The cell is the CIF's own (a symmetric CIF
gives its conventional cell: rock-salt NaCl in Fm-3m, 2 sites listed, gives 8 atoms); no
reduction to a primitive cell, which would give the same k-NN graph around every atom. Sites
with partial occupancy, unknown elements, missing cell parameters or non-numeric coordinates are
refused with that reason; so are a space-group symbol gemmi does not know when no symmetry
operations are listed (gemmi would read it as P1, keeping only the listed sites), a cell
length that is not positive and cell angles outside (0, 180) degrees or closing no cell.

Why gemmi. Measured on this project's 2-core machine (shared, so read the ratios): one process
parsing the 3,787 perovskite CIF strings of ``sample://perov5_castelli`` with each parser
in turn, 3 interleaved passes, best pass each; plus hand-written symmetric CIFs.

* gemmi 0.7.5 (chosen): 9,700 CIFs/s (1.0x); import 0.03-0.06 s; 7 MB installed, no
  dependencies; right on every hand-written CIF (NaCl 8, rutile 6, wurtzite 4 atoms; symmetry
  operations listed or only the space-group symbol; labels that are not element symbols).
* jarvis-tools' own parser, ``Atoms.from_cif(..., use_cif2cell=False)``: 2.0x slower; takes
  the element from the site *label* (an O site labelled ``Ob`` became element ``Ob``) and fails
  on a CIF that gives only the space-group symbol. No shell and no temporary file on this path.
* pymatgen 2026.10 ``CifParser``: 38x slower; right on every CIF; about 650 MB with its
  dependencies; import 1.0-1.7 s.
* ASE 3.29 ``ase.io.read(format="cif")``: 30x slower; right on every CIF; import 2.2-2.4 s.

All four give the same lattices and atom counts on the perovskites (jarvis' lattice lengths
differ by up to 4e-4 Angstrom). jarvis-tools' default ``use_cif2cell=True`` is what this module
replaces: it ran ``os.system("cif2cell " + filename + ...)``, a shell command built from the
file name, and left one temporary file per CIF read.

**POSCAR** text goes through ``jarvis.io.vasp.inputs.Poscar.from_string``. **JARVIS Atoms dicts**
(``lattice_mat``, ``coords``, ``elements``, ``cartesian``) and **pymatgen Structure dicts**
(``lattice.matrix``, ``sites[].species[].element/occu``, ``sites[].abc``) are plain JSON and are
read without jarvis or pymatgen objects. :func:`parse_structure` detects which of the four a
value is (a string starting with ``{`` is decoded as JSON, or as a Python dict literal).
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, list[str]]

KINDS = ("cif", "poscar", "jarvis_atoms", "pymatgen_structure")
# Occupancies within this of 1 count as full (refinements print 0.999 or 1.00(1)).
OCCUPANCY_TOLERANCE = 0.01
_CELL_KEYS = (
    "_cell_length_a",
    "_cell_length_b",
    "_cell_length_c",
    "_cell_angle_alpha",
    "_cell_angle_beta",
    "_cell_angle_gamma",
)


def no_content(message: str, limit: int = 200) -> str:
    """A parser's message without what it quotes of the text: a reason never repeats the
    content of a file (which may not be a structure at all, e.g. ``/etc/passwd``)."""
    message = re.sub(r"'[^'\n]*'|\"[^\"\n]*\"", "'...'", message)
    return message if len(message) <= limit else message[:limit] + "..."


# Longer integers are read as floats (inf): Python refuses to convert them to int (ValueError).
MAX_INT_DIGITS = 4000


def _lenient_int(text: str) -> int | float:
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def parse_json(text: str) -> Any:
    """``json.loads`` for data files: an integer of more than :data:`MAX_INT_DIGITS` digits
    becomes a float (inf, then refused as non-finite where a number is needed), and nesting
    too deep for the decoder is a ``ValueError`` like any other malformed JSON."""
    try:
        return json.loads(text, parse_int=_lenient_int)
    except RecursionError:
        raise ValueError("nested too deeply to be read") from None


class StructureError(ValueError):
    """A structure that cannot be used, with the reason."""


def _checked(lattice: Any, cart: Any, elements: list[str]) -> Arrays:
    lattice = np.asarray(lattice, dtype=np.float64).reshape(3, 3)
    cart = np.asarray(cart, dtype=np.float64).reshape(-1, 3)
    if len(elements) != len(cart):
        raise StructureError(f"{len(elements)} elements for {len(cart)} positions")
    if not len(cart):
        raise StructureError("no atoms")
    if not (np.isfinite(lattice).all() and np.isfinite(cart).all()):
        raise StructureError("non-finite lattice or coordinates")
    if abs(np.linalg.det(lattice)) < 1e-6:
        raise StructureError("the lattice vectors are linearly dependent (zero cell volume)")
    return lattice, cart, [str(e) for e in elements]


# ----------------------------------------------------------------------------------------- CIF
def _cif_block(text: str):
    import gemmi

    try:
        doc = gemmi.cif.read_string(text)
    except (ValueError, RuntimeError, IndexError) as exc:
        raise StructureError(f"CIF syntax: {no_content(str(exc))}") from None
    blocks = [b for b in doc if len(b.find_values("_atom_site_fract_x"))]
    if len(blocks) == 1:
        return blocks[0]
    if blocks:
        names = ", ".join(b.name for b in blocks)
        raise StructureError(f"{len(blocks)} data blocks with atom sites ({names}); expected one")
    if any(len(b.find_values("_atom_site_Cartn_x")) for b in doc):
        raise StructureError("only Cartesian atom sites; fractional (_atom_site_fract_x) expected")
    raise StructureError("no atom sites (_atom_site_fract_x) in the CIF")


def _check_cell(block) -> None:
    """Refuse cell parameters no crystal has: a length that is not positive, an angle outside
    (0, 180) degrees, or angles that close no cell. Read from the CIF itself: gemmi replaces
    an impossible cell by a 1 A cube without a word."""
    import gemmi

    a, b, c, *angles = (gemmi.cif.as_number(block.find_value(k)) for k in _CELL_KEYS)
    lengths = (a, b, c)
    if not all(math.isfinite(v) and v > 0 for v in lengths):
        raise StructureError(
            f"cell lengths a, b, c = {', '.join(f'{v:g}' for v in lengths)} Angstrom; each must "
            "be positive"
        )
    shown = ", ".join(f"{v:g}" for v in angles)
    if not all(math.isfinite(v) and 0 < v < 180 for v in angles):
        raise StructureError(
            f"cell angles alpha, beta, gamma = {shown} degrees; each must lie strictly between "
            "0 and 180"
        )
    ca, cb, cg = (math.cos(math.radians(v)) for v in angles)
    if 1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg <= 1e-10:
        raise StructureError(
            f"cell angles alpha, beta, gamma = {shown} degrees close no cell (zero volume)"
        )


def read_cif(text: str) -> Arrays:
    """Atoms of the one structure in a CIF text, symmetry applied (see the module docstring)."""
    import gemmi

    block = _cif_block(text)
    absent = [k for k in _CELL_KEYS if block.find_value(k) in (None, "?", ".")]
    if absent:
        raise StructureError(f"CIF lacks {', '.join(absent)}")
    try:
        small = gemmi.make_small_structure_from_block(block)
    except (ValueError, RuntimeError, IndexError) as exc:  # e.g. an unparseable symmetry operation
        raise StructureError(f"CIF: {no_content(str(exc))}") from None
    _check_cell(block)
    symbol = small.spacegroup_hm.strip() or small.spacegroup_hall.strip()
    if not small.symops and small.spacegroup is None and symbol:
        # gemmi would fall back to P1 and silently read only the listed sites
        raise StructureError(
            f"unknown space-group symbol {symbol[:40]!r} and "
            "no symmetry operations listed (_space_group_symop_operation_xyz); reading it as P1 "
            "would keep only the listed sites"
        )
    try:
        sites = small.get_all_unit_cell_sites()
    except (ValueError, RuntimeError, IndexError) as exc:
        raise StructureError(f"CIF: {no_content(str(exc))}") from None
    for site in small.sites:
        if abs(site.occ - 1.0) > OCCUPANCY_TOLERANCE:
            raise StructureError(
                f"partial occupancy: site {site.label} ({site.type_symbol or site.element.name}) "
                f"has occupancy {site.occ:g}; disordered structures are not supported"
            )
        if site.element.name == "X":
            raise StructureError(
                f"site {site.label}: unknown element (type symbol {site.type_symbol!r})"
            )
    frac = np.array([[s.fract.x, s.fract.y, s.fract.z] for s in sites], dtype=np.float64)
    if not np.isfinite(frac).all():
        raise StructureError("a site has a missing or non-numeric fractional coordinate")
    lattice = np.array(small.cell.orth.mat, dtype=np.float64).T  # columns -> rows a, b, c
    return _checked(lattice, (frac % 1.0) @ lattice, [s.element.name for s in sites])


# ------------------------------------------------------------------------------------- POSCAR
def read_poscar(text: str) -> Arrays:
    """Atoms of a VASP POSCAR text (jarvis' reader)."""
    from jarvis.io.vasp.inputs import Poscar

    try:
        atoms = Poscar.from_string(text).atoms
    except Exception as exc:  # jarvis raises IndexError, ValueError, ... on malformed text
        raise StructureError(
            f"POSCAR: {type(exc).__name__}: {no_content(str(exc))} (not a readable POSCAR)"
        ) from None
    return _checked(atoms.lattice_mat, atoms.cart_coords, list(atoms.elements))


# -------------------------------------------------------------------------------------- dicts
def from_jarvis_atoms(atoms: dict[str, Any]) -> Arrays:
    """A JARVIS ``atoms`` dict (``lattice_mat``, ``coords``, ``elements``, ``cartesian``).

    Positions are those jarvis-tools' ``Atoms`` gives (and upstream ALIGNN builds its graphs
    from): fractional coordinates times the lattice rounded to 1e-5 A (jarvis' ``Lattice``
    rounds), while periodic images use the lattice as given. The difference is below 1e-5 A, but
    it decides exactly tied neighbour shells, so the graphs match upstream's bond for bond.
    """
    try:
        lattice = np.asarray(atoms["lattice_mat"], dtype=np.float64).reshape(3, 3)
        coords = np.asarray(atoms["coords"], dtype=np.float64).reshape(-1, 3)
        elements = [str(e) for e in atoms["elements"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StructureError(f"bad JARVIS atoms dict: {type(exc).__name__}: {exc}") from None
    with np.errstate(invalid="ignore", over="ignore"):  # inf/nan: refused by _checked
        cart = coords if atoms.get("cartesian", False) else np.dot(coords, np.around(lattice, 5))
    return _checked(lattice, cart, elements)


def from_pymatgen_dict(struct: dict[str, Any]) -> Arrays:
    """A pymatgen ``Structure.as_dict()`` (plain JSON; pymatgen is not needed)."""
    try:
        lattice = np.asarray(struct["lattice"]["matrix"], dtype=np.float64).reshape(3, 3)
        sites = list(struct["sites"])
    except (KeyError, TypeError, ValueError) as exc:
        raise StructureError(f"bad pymatgen Structure dict: {type(exc).__name__}: {exc}") from None
    elements, cart = [], []
    for i, site in enumerate(sites):
        try:
            species = list(site.get("species") or [])
            occupancy = sum(float(s.get("occu", 1.0)) for s in species)
        except (AttributeError, TypeError, ValueError) as exc:
            raise StructureError(
                f"site {i}: unreadable species or occupancy ({type(exc).__name__})"
            ) from None
        if len(species) != 1 or abs(occupancy - 1.0) > OCCUPANCY_TOLERANCE:
            found = ", ".join(f"{s.get('element')}:{s.get('occu', 1.0)}" for s in species)
            raise StructureError(
                f"partial occupancy: site {i} holds [{found}]; disordered structures are not "
                "supported"
            )
        element = str(species[0].get("element", ""))
        if not (element.isalpha() and element[:1].isupper()) or element.startswith("X"):
            raise StructureError(f"site {i}: {element!r} is not an element")
        elements.append(element)
        try:
            if "xyz" in site:
                cart.append([float(v) for v in site["xyz"]])
            elif "abc" in site:
                cart.append(np.asarray(site["abc"], dtype=np.float64) @ lattice)
            else:
                raise StructureError(f"site {i} has neither 'abc' nor 'xyz'")
        except (TypeError, ValueError) as exc:
            if isinstance(exc, StructureError):
                raise
            raise StructureError(
                f"site {i}: unreadable coordinates ({type(exc).__name__})"
            ) from None
    return _checked(lattice, cart, elements)


# ---------------------------------------------------------------------------------- detection
def _as_dict(text: str) -> dict[str, Any]:
    try:
        value = parse_json(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)  # a Python repr of a dict (CSV dumps of data frames)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            reason = no_content(str(exc))
            raise StructureError(f"text starting with '{{' is not a JSON dict: {reason}") from None
    if not isinstance(value, dict):
        raise StructureError("text starting with '{' is not a dict")
    return value


def detect_kind(value: Any) -> str:
    """Which of :data:`KINDS` ``value`` is (a dict, or a string holding CIF, POSCAR or a dict)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise StructureError("empty structure")
        if text.startswith("{"):
            return detect_kind(_as_dict(text))
        if "_cell_length_a" in text or text.startswith("data_") or "\ndata_" in text:
            return "cif"
        return "poscar"
    if isinstance(value, dict):
        if "lattice_mat" in value and "elements" in value:
            return "jarvis_atoms"
        if "lattice" in value and "sites" in value:
            return "pymatgen_structure"
        keys = ", ".join(sorted(map(str, value))[:12])
        raise StructureError(
            f"a dict with keys [{keys}] is neither a JARVIS Atoms dict (lattice_mat, coords, "
            "elements) nor a pymatgen Structure dict (lattice, sites)"
        )
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise StructureError("empty structure")
    raise StructureError(f"a {type(value).__name__} is not a structure")


def parse_structure(value: Any) -> tuple[str, Arrays]:
    """Detect the kind of ``value`` and read it; returns ``(kind, (lattice, cart, elements))``."""
    kind = detect_kind(value)
    if isinstance(value, str) and value.strip().startswith("{"):
        value = _as_dict(value.strip())
    readers = {
        "cif": read_cif,
        "poscar": read_poscar,
        "jarvis_atoms": from_jarvis_atoms,
        "pymatgen_structure": from_pymatgen_dict,
    }
    try:
        return kind, readers[kind](value)
    except StructureError as exc:
        raise StructureError(f"{kind}: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # a reader's unforeseen failure on one value: that value is unreadable, not the load
        raise StructureError(f"{kind}: unreadable ({type(exc).__name__})") from None
