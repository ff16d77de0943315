"""ADFES (Amsterdam Dynamic Facial Expression Set), preprocessed as in the
paper."""
