"""Modem backends: ModemManager on the system bus. They report the modem's state and carry out the connectivity
policy's recovery commands; whether the Internet really answers is the policy's probe, not theirs."""
