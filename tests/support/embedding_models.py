"""A second embedding model for tests, made offline: a copy of the packaged all-MiniLM-L6-v2
whose encoder weights are moved by small noise. Other vectors and another fingerprint, so a
model of its own, that still reads English well enough to find a fact."""

import shutil
from pathlib import Path


def make_retuned_model(directory: Path) -> Path:
    import torch
    from transformers import AutoModel

    from documents.embedding import packaged_dir

    shutil.copytree(packaged_dir(), directory)
    encoder = AutoModel.from_pretrained(directory, local_files_only=True)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in encoder.encoder.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.01)
    encoder.save_pretrained(directory)
    return directory
