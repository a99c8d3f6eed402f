"""Janus-4o fine-tuning (ShareGPT-4o-Image ``train_janus.py`` behaviour on the transformers port):
``sequences`` (examples and batches), ``objective`` (dropout, VQ targets, loss), ``optim`` (AdamW and the
warm-up + cosine schedule), ``loop`` (the single-process ``train``)."""
