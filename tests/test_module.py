"""The LightningModule: the paper's optimiser and schedule, error metrics, test-time averaging."""

import pytest
import torch
from torch.nn import functional as F

from alexnet.training.module import LitAlexNet, TopKError

SMALL = dict(num_classes=10, crop_size=67)


def test_sgd_is_the_papers():
    opt = LitAlexNet(SMALL).configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.SGD)
    g = opt.param_groups[0]
    assert (g["lr"], g["momentum"], g["weight_decay"], g["nesterov"]) == (0.01, 0.9, 0.0005, False)


def test_lr_is_divided_by_ten_on_plateaus_three_times_at_most():
    conf = LitAlexNet(SMALL, lr_patience=1).configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["monitor"] == "val/top1_err"
    lrs = []
    for epoch in range(12):
        sched.step(0.5)  # the validation error never improves
        lrs.append(opt.param_groups[0]["lr"])
    distinct = sorted(set(round(lr, 12) for lr in lrs), reverse=True)
    assert distinct == [0.01, 0.001, 0.0001, 0.00001]
    assert lrs[-1] == pytest.approx(1e-5)


def test_lr_holds_while_the_error_improves():
    conf = LitAlexNet(SMALL, lr_patience=1).configure_optimizers()
    for err in (0.9, 0.8, 0.7, 0.6, 0.5):
        conf["lr_scheduler"]["scheduler"].step(err)
    assert conf["optimizer"].param_groups[0]["lr"] == 0.01


def test_top_k_error_is_one_minus_top_k_accuracy_by_hand():
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 2]])
    labels = torch.tensor([0, 0, 0, 3])
    top1, top5 = TopKError(6, 1), TopKError(6, 5)
    top1.update(logits, labels)
    top5.update(logits, labels)
    # top-1 right for images 0 and 2; top-5 right for 0, 2 and 3 (image 1's label has the lowest score)
    assert top1.compute().item() == pytest.approx(0.5)
    assert top5.compute().item() == pytest.approx(0.25)


def test_ten_crop_prediction_averages_softmax_over_crops():
    torch.manual_seed(0)
    module = LitAlexNet(SMALL).eval()
    x = torch.randn(2, 10, 3, 67, 67) * 50
    with torch.no_grad():
        probs = module.predict_proba(x)
        by_hand = torch.stack([F.softmax(module.net(x[i]), dim=1).mean(0) for i in range(2)])
    torch.testing.assert_close(probs, by_hand)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


@pytest.mark.parametrize("kwargs, message", [({"lr": 0}, "lr must be positive"), ({"lr_factor": 1.5}, "lr_factor")])
def test_bad_optimiser_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LitAlexNet(SMALL, **kwargs)
