"""Randomly initialised transformers models of the paper's encoder families, saved with their processors.

`tiny` sizes keep the tests fast; `paper` sizes are the real architectures (ViT-Base/16, CLIP ViT-B/32, RoBERTa-base,
WavLM-Base-plus x-vector) for throughput benchmarks, which do not depend on the weights. Tokenizers use a
byte-level vocabulary written here, so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import transformers

TINY = {"num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2's table), so every text tokenizes."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def save_vit(folder: Path, classifier: bool, size: str = "tiny") -> Path:
    if size == "paper":  # ViT-Base/16 at 224 px: the transformers defaults
        config, side = transformers.ViTConfig(), 224
    else:
        config, side = transformers.ViTConfig(hidden_size=32, image_size=32, patch_size=8, **TINY), 32
    model = transformers.ViTForImageClassification(config) if classifier else transformers.ViTModel(config)
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": side, "width": side}).save_pretrained(folder)
    return folder


def save_roberta(folder: Path, size: str = "tiny") -> Path:
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
    for char in byte_alphabet():
        vocab.setdefault(char, len(vocab))
    transformers.RobertaTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    if size == "paper":  # roberta-base (its 50265-token embedding table; only the byte tokens are ever used)
        config = transformers.RobertaConfig()
    else:
        config = transformers.RobertaConfig(vocab_size=len(vocab), hidden_size=24, max_position_embeddings=40, **TINY)
    transformers.RobertaModel(config).save_pretrained(folder)
    return folder


def save_clip(folder: Path, size: str = "tiny") -> Path:
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in byte_alphabet():
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(f"{char}</w>", len(vocab))
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    side = 224 if size == "paper" else 32
    processor = transformers.CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    transformers.CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    ids = dict(bos_token_id=0, eos_token_id=1, pad_token_id=1)
    if size == "paper":  # ViT-B/32: the transformers defaults
        config = transformers.CLIPConfig(text_config=ids)
    else:
        text = dict(vocab_size=len(vocab), hidden_size=32, **ids, **TINY)
        vision = dict(hidden_size=32, image_size=32, patch_size=8, **TINY)
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    transformers.CLIPModel(config).save_pretrained(folder)
    return folder


def save_wavlm(folder: Path, size: str = "tiny") -> Path:
    config = transformers.WavLMConfig() if size == "paper" else transformers.WavLMConfig(  # paper: WavLM-Base-plus
        hidden_size=32,
        conv_dim=(16,) * 7,
        tdnn_dim=(16, 16, 16, 16, 32),
        xvector_output_dim=12,
        num_buckets=16,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        initializer_range=0.3,  # x-vectors of order 1 (the default 0.02 gives ~1e-7, below fp16's range)
        **TINY,
    )
    transformers.WavLMForXVector(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(folder)
    return folder
