"""AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012), reproduced with Lightning and Hydra."""
