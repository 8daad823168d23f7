"""How a competition reaches the kernel: one module per interface, each registered (registry.INTERFACES).

An interface is a `serve(comp, kernel, predict)` that drives the kernel until the competition's problems are
exhausted: AIMO-2/3's `kaggle_evaluation` inference server, AIMO-1's `aimo` environment. A new competition
interface is one module here that registers itself; `competition.interface` names it.
"""
