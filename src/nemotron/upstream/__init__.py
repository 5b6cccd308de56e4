"""Facts about the upstream libraries the GPU path runs (Megatron-Bridge, Megatron-Core, ModelOpt, NeMo-RL,
NeMo-Evaluator): which versions each container ships, and where each fact was read."""
