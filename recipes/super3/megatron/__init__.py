"""The GPU backend: Megatron-Bridge (pretrain, SFT, quantize), NeMo-RL (GRPO), NeMo-Evaluator (eval).

Each stage module has a pure translation from train.yaml to the library's own names
(``build_*``: tested on CPU against ``api_reference/*.json``, the published parameter names with
their source version) and one small ``_launch`` that imports the library and calls it. The libraries
need CUDA and Python 3.12; they are imported only inside ``_launch``, on the node, in the container.
"""
