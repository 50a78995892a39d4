"""Face analysis: decoding, detection, landmarks, the encoders (dlib, ONNX), the cache, the executors."""
