"""A benchmark's rows as one rich table; the per-layer profile as another."""

from rich.console import Console
from rich.table import Table


def print_rows(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    table.add_column("measurement")
    table.add_column("images/s", justify="right")
    table.add_column("min-max over rounds", justify="right")
    table.add_column("note", justify="right")
    for row in rows:
        rate = row.get("images_per_s")
        note = row.get("value", "")
        if "tflops" in row:
            note = f"{row['tflops']:.2f} TFLOP/s" + (
                f" ({row['peak_fraction']:.0%} of bf16 peak)" if "peak_fraction" in row else ""
            )
        if "hours_90_epochs" in row:
            note = f"90 ImageNet epochs: {row['hours_90_epochs']:.1f} h"
        spread = f"{row['range'][0]:,.1f}-{row['range'][1]:,.1f}" if "range" in row else ""
        table.add_row(row["name"], f"{rate:,.1f}" if rate is not None else "", spread, note)
    Console().print(table)


def print_layers(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    for column in ("part", "forward ms", "backward ms", "ms / step", "share"):
        table.add_column(column, justify="left" if column == "part" else "right")
    total = sum(row["forward"] + row["backward"] for row in rows)
    for row in rows:
        ms = row["forward"] + row["backward"]
        table.add_row(row["name"], f"{row['forward']:,.1f}", f"{row['backward']:,.1f}", f"{ms:,.1f}", f"{ms / total:.1%}")
    table.add_row("whole step", "", "", f"{total:,.1f}", "100%", style="bold")
    Console().print(table)
