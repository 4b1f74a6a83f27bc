"""HTTP endpoints for real producers, each speaking its producer's protocol; thin, like `handlers`."""
