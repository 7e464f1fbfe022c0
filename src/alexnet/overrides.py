"""Which command-line overrides change what a run measures: one list for the W&B run names and the
tables' grouping of runs into one setting (mean ± std over its seeds)."""

# Where or how a run goes, never what it measures: folders and Hydra, loggers and what they keep,
# the progress display, resuming, loader workers and caches, the LRN kernel (the same numbers).
LOGISTICS = (
    "hydra",
    "paths",
    "logger",
    "tags",
    "ckpt_path",
    "figures",
    "sync_every_n_steps",
    "callbacks.progress_bar",
    "callbacks.log_lines",
    "data.root",
    "data.num_workers",
    "data.cache_dir",
    "model.lrn_compiled",
)


def key_of(override: str) -> str:
    """The config key an override sets: '+model.lrn=false' -> 'model.lrn', '~data.resize' -> 'data.resize'."""
    return override.lstrip("+~").partition("=")[0]


def within(key: str, prefixes: tuple[str, ...]) -> bool:
    """KEY is one of PREFIXES or a key inside one of them (by dotted path, not by spelling)."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def is_logistics(override: str) -> bool:
    return within(key_of(override), LOGISTICS)
