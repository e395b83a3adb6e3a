"""Personal data: payload encryption with a data key per lead, export, erasure, consent."""
