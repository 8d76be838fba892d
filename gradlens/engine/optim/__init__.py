"""gradlens.engine.optim: torch.optim's optimizers and learning-rate schedulers for the native engine."""

from . import lr_scheduler, optimizer
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .lbfgs import LBFGS
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "Adadelta", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LBFGS", "lr_scheduler", "optimizer"]
