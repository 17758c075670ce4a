"""The model as the device holds it: folding to float32, the float32 twin and its error bounds, the C header, memory."""
