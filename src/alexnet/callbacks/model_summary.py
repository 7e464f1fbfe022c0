"""Lightning's rich model summary, with its FLOPs column measured.

Lightning counts FLOPs by sending ``example_input_array`` through the data module's batch hooks
and then the module. This project's hooks turn uint8 loader batches into crops, so a bare image
cannot take that path, and without one the column read 0 for every layer. Here one zero image at
the crop size goes through the network alone, once at fit start (milliseconds, no random numbers
drawn). Convolutions and fully connected layers make 1.45 GFLOP per 227-pixel image (2 x the
paper's 0.724 GMAC) and 117 MFLOP at 67 pixels; the LRN adds what its implementation costs.
"""

import torch
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import get_human_readable_count
from torch.utils.flop_counter import FlopCounterMode


def forward_flops(net: torch.nn.Module, crop_size: int) -> dict[str, int]:
    """FLOPs of one image through ``net``, per submodule (``features.conv1``, ...; '' is the whole net)."""
    was_training = net.training
    x = torch.zeros(1, 3, crop_size, crop_size, device=next(net.parameters()).device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(x)
    net.train(was_training)
    root = type(net).__name__
    return {
        name.removeprefix(root).removeprefix("."): sum(counts.values())
        for name, counts in counter.get_flop_counts().items()
        if name.startswith(root)
    }


class ModelSummary(RichModelSummary):
    """For the LightningModule's ``net``: its rows and the total get the FLOPs of one image."""

    def on_fit_start(self, trainer, pl_module) -> None:
        self.net = pl_module.net
        super().on_fit_start(trainer, pl_module)

    def summarize(
        self, summary_data, total_parameters, trainable_parameters, model_size, total_training_modes, total_flops, **kwargs
    ) -> None:
        flops = forward_flops(self.net, self.net.crop_size)
        names = dict(summary_data)["Name"]

        def of(name: str) -> int:  # "net", "net.features.conv1": the network's; the metrics' rows: none
            return flops.get(name.removeprefix("net").removeprefix("."), 0) if name.split(".")[0] == "net" else 0

        data = [
            (column, [get_human_readable_count(of(n)) for n in names]) if column == "FLOPs" else (column, values)
            for column, values in summary_data
        ]
        RichModelSummary.summarize(
            data, total_parameters, trainable_parameters, model_size, total_training_modes, total_flops=flops[""], **kwargs
        )
