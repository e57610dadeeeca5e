"""The station's one button and its LED: GPIO (gpiozero) and USB keys (evdev)."""
