"""The LightningModule: the paper's optimiser and schedule, error metrics, test-time averaging."""

import pytest
import torch
from builders import small_model
from conftest import OPTIM
from torch.nn import functional as F

from alexnet.training.module import LitAlexNet, TopKError, load_module

SMALL = small_model()


def test_sgd_is_the_papers():
    opt = LitAlexNet(SMALL, OPTIM).configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.SGD)
    weights, biases = opt.param_groups
    assert (weights["lr"], weights["momentum"], weights["weight_decay"], weights["nesterov"]) == (0.01, 0.9, 0.0005, False)
    # Biases: no weight decay (cuda-convnet's wc, Caffe's decay_mult 0), the weights' learning rate.
    assert (biases["lr"], biases["momentum"], biases["weight_decay"]) == (0.01, 0.9, 0.0)


def test_every_bias_and_only_biases_escape_weight_decay():
    module = LitAlexNet({**SMALL, "extra_conv": True}, OPTIM)
    weights, biases = module.configure_optimizers()["optimizer"].param_groups
    names = {id(p): n for n, p in module.net.named_parameters()}
    assert sorted(names[id(p)] for p in biases["params"]) == sorted(n for n in names.values() if n.endswith(".bias"))
    assert sorted(names[id(p)] for p in weights["params"]) == sorted(n for n in names.values() if n.endswith(".weight"))
    # A decayed bias shrinks towards 0 with a zero gradient; an undecayed one keeps its init of 1.
    fc6 = module.net.classifier.fc6
    opt = module.configure_optimizers()["optimizer"]
    fc6.weight.grad, fc6.bias.grad = torch.zeros_like(fc6.weight), torch.zeros_like(fc6.bias)
    before = fc6.weight.detach().clone()
    opt.step()
    assert torch.all(fc6.bias == 1.0)
    torch.testing.assert_close(fc6.weight.detach(), before * (1 - 0.01 * 0.0005))


def test_bias_keys_switch_to_caffes_treatment():
    caffe = {**OPTIM, "bias_lr_mult": 2.0, "bias_weight_decay": 0.0005}
    weights, biases = LitAlexNet(SMALL, caffe).configure_optimizers()["optimizer"].param_groups
    assert (biases["lr"], biases["weight_decay"]) == (0.02, 0.0005) and weights["lr"] == 0.01


def test_lr_is_divided_by_ten_on_plateaus_three_times_at_most():
    conf = LitAlexNet(SMALL, {**OPTIM, "lr_patience": 1}).configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["monitor"] == "val/top1_err"
    lrs = []
    for _ in range(12):
        sched.step(0.5)  # the validation error never improves
        lrs.append(opt.param_groups[0]["lr"])
    distinct = sorted(set(round(lr, 12) for lr in lrs), reverse=True)
    assert distinct == [0.01, 0.001, 0.0001, 0.00001]
    assert lrs[-1] == pytest.approx(1e-5)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-5)  # the biases follow (at bias_lr_mult times the rate)


def test_lr_holds_while_the_error_improves():
    conf = LitAlexNet(SMALL, {**OPTIM, "lr_patience": 1}).configure_optimizers()
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
    module = LitAlexNet(SMALL, OPTIM).eval()
    x = torch.randn(2, 10, 3, 67, 67) * 50
    with torch.no_grad():
        probs = module.predict_proba(x, crops=10)
        by_hand = torch.stack([F.softmax(module.net(x[i]), dim=1).mean(0) for i in range(2)])
    torch.testing.assert_close(probs, by_hand)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"lr": 0}, "lr must be positive"), ({"lr_factor": 1.5}, "lr_factor"), ({"bias_lr_mult": 0}, "bias_lr_mult")],
)
def test_bad_optimiser_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LitAlexNet(SMALL, {**OPTIM, **kwargs})


def test_checkpoints_from_before_the_optim_node_still_load(tmp_path):
    # Saved when LitAlexNet took the optimiser's settings as flat keywords and decayed biases.
    net = LitAlexNet(SMALL, OPTIM)
    flat = {k: v for k, v in OPTIM.items() if not k.startswith("bias_")}
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": {"model": SMALL, **flat}}, path)
    loaded = load_module(str(path))
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    assert loaded.optim.bias_weight_decay == OPTIM["weight_decay"] and loaded.optim.bias_lr_mult == 1.0
