"""The backup pipeline: entries -> archive -> compressor -> meter -> destinations."""
