"""Losses the apps train with: triplet and CosFace losses for face embeddings, style losses."""
