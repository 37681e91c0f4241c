"""Bridges to other NAS tools. Each bridge imports its tool only when used, so litenas's core
never needs it: :mod:`nas.interop.nni_space` (NNI 3.0, the ``litenas[nni]`` extra)."""
