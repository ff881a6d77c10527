"""Losses the apps train with: triplet losses for face embeddings (detection and style losses to come)."""
