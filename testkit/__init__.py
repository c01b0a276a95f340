"""Test and benchmark kit, installed with the project so tests and `moe bench` import it alike.

- `testkit.fakediscord`: a fake Discord (gateway + REST on 127.0.0.1) that the unmodified
  discord.py client in a real `moe bot` process connects to (see its README.md).
- `testkit.tinypack`: `make_tiny_pack(dir)`, a tiny random-init pack exported the way real runs are (torch).
"""
