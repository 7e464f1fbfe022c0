"""A benchmark's rows as one rich table."""

from rich.console import Console
from rich.table import Table


def print_rows(title: str, rows: list[dict]) -> None:
    table = Table(title=title)
    table.add_column("measurement")
    table.add_column("images/s", justify="right")
    table.add_column("note", justify="right")
    for row in rows:
        rate = row.get("images_per_s")
        note = row.get("value", "")
        if "tflops" in row:
            note = f"{row['tflops']:.2f} TFLOP/s" + (f" ({row['peak_fraction']:.0%} of bf16 peak)" if "peak_fraction" in row else "")
        if "hours_90_epochs" in row:
            note = f"90 ImageNet epochs: {row['hours_90_epochs']:.1f} h"
        table.add_row(row["name"], f"{rate:,.1f}" if rate is not None else "", note)
    Console().print(table)
