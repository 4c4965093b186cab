"""Why depthwise convolution is slow: machine roofline, cost model, per-layer profiles, plots."""
