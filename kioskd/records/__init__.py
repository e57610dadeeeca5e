"""What the station keeps on disk, with no personal data: the store (SQLite), the office's figures, their
retention, and the recorder that writes samples, receipts and visits from what happened. It never imports the
station's machine: it learns everything from events and wipe outcomes."""
