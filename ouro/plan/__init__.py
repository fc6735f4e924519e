"""`ouro plan`: the train step compiled for TPU topologies (or simulated devices) without
the chips, and the per-chip peaks MFU is quoted against."""
