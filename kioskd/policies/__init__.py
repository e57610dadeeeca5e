"""The station's policies: small rule sets above the HAL, each declaring the events it wants and reacting in hooks
(``base.Policy``), talking to the station only through ``base.Outlet``. No policy imports a driver or a hardware
library (the scan pipeline's OpenCV is an image library, not a device)."""
