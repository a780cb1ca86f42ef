"""Label-free help from unlabeled target-language text: class priors estimated by EM and an
ensemble's soft labels, written to files a training method reads (it never imports this)."""
