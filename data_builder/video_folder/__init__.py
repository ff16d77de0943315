"""Your own labelled face videos (or frame folders), preprocessed like ADFES."""
