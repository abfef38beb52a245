"""The SAM 2 streaming engine. Importing this package does not import torch; its modules do."""
