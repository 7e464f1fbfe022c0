"""The installed Lightning still has every private name exact resume and DDP under Hydra rely on
(alexnet.lightning_private), and no other module reaches for one."""

import re
from pathlib import Path

from alexnet import lightning_private

SRC = Path(__file__).resolve().parents[1] / "src" / "alexnet"


def test_the_installed_lightning_has_every_private_name_we_use():
    import lightning

    missing = lightning_private.missing_names()
    assert not missing, (
        f"lightning {lightning.__version__} lacks: "
        + "; ".join(missing)
        + ". Install a release within pyproject.toml's bound, or port alexnet/lightning_private.py."
    )


def test_private_lightning_names_appear_in_one_module_only():
    names = {name for _, name, _ in lightning_private.USED}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    users = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text()))
    assert users == ["lightning_private.py"], users
