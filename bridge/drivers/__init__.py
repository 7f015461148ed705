"""oslo.messaging drivers shipped with the bridge (``zaqar://``)."""
