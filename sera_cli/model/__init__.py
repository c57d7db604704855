"""The SERA model: backbones, SERA-Adapter, neck, SERA-Fusion, decoder and losses."""
