"""Face detector backends; each module is listed in viper.faces.FACE_DETECTORS."""
