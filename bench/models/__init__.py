"""Building blocks that methods share: event features, user-encoder layers, the LLM loader, prompts
and LM inputs, constrained decoding and the training loop. The harness itself never imports this package."""
