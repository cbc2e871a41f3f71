"""Face detector backends: each module registers its detector in viper.faces.FACE_DETECTORS."""
