"""Experiments that are not an AlexNet training run: figure 1 (ReLU versus tanh on CIFAR-10)."""
