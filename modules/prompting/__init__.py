"""From prompt text to conditioning: tokenizers, 75-token chunks and emphasis, conditioning that changes during
sampling, prompt interpolation, and extra networks (LoRA, hypernetworks, embeddings) with their cards."""
