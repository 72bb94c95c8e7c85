"""act2i: action depiction in text-to-image models."""
