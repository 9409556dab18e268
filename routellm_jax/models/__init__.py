"""Router architectures (one file each) and the encoders they stand on."""
