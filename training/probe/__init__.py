"""A linear probe on a frozen multilingual encoder: the zero-shot baseline a user builds in
minutes (English labels in, any language the encoder knows out), and one member of the
ensemble that labels in-domain Vietnamese text for the KDA student's adaptation."""
