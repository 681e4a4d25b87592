"""Training for the speech-to-motion DiT: `python -m training <preprocess|train|finetune|eval|synth>`.

Modules, one concern each: `preprocess` (videos -> shards), `synth` (a synthetic set where motion is a known
function of audio), `data` (shards, manifest, deterministic window batches), `train` (the loop, DDP, exact
resume), `finetune` (lower LR, frozen layers), `evaluate` (L2, lip-sync proxy, diversity).
"""
