"""The one catalogue of agent-facing messages, French first and English second, keyed.

Policies and the API refer to messages by key with named parameters; no agent-facing string lives elsewhere.
Parameters are counts, durations, device names and percentages: never a citizen's data. A parameter that reads
differently in each language (a size: "1,2 Go" and "1.2 GB") is itself a ``Message``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Lang = Literal["fr", "en"]


@dataclass(frozen=True)
class Message:
    fr: str
    en: str


CATALOGUE: dict[str, Message] = {
    # station states
    "state.off": Message("Station éteinte", "Station off"),
    "state.starting": Message("Démarrage…", "Starting…"),
    "state.ready": Message("Prête : appuyez pour accueillir un citoyen", "Ready: press to welcome a citizen"),
    "state.in_session": Message("Citoyen en cours", "Citizen session in progress"),
    "state.wiping": Message("Effacement des données du citoyen…", "Wiping the citizen's data…"),
    "state.travelling": Message("En route : station en pause", "Travelling: station paused"),
    "state.shutting_down": Message("Fin de journée : arrêt en cours", "End of day: shutting down"),
    # refusals of the state machine
    "refused.transition": Message(
        "Action impossible maintenant ({current} → {target})", "Not possible now ({current} → {target})"
    ),
    "refused.busy": Message("Action déjà en cours : patientez un instant", "Already busy: wait a moment"),
    "refused.start.not_off": Message("La station est déjà démarrée", "The station is already running"),
    "refused.next.state": Message(
        "« Citoyen suivant » impossible dans l'état : {state}",
        "'Next citizen' is not possible while: {state}",
    ),
    "refused.next.wiping": Message(
        "Effacement en cours : patientez avant le citoyen suivant",
        "A wipe is running: wait before the next citizen",
    ),
    "refused.next.travelling": Message(
        "Le véhicule roule : pas de session en route", "The vehicle is moving: no session while travelling"
    ),
    "refused.end_of_day.state": Message(
        "Fin de journée impossible dans l'état : {state}", "End of day is not possible while: {state}"
    ),
    "refused.power.low": Message(
        "Batterie trop faible pour un nouveau citoyen ({minutes} min restantes) : branchez le secteur",
        "Battery too low for a new citizen ({minutes} min left): plug in shore power",
    ),
    "refused.power.critical": Message(
        "Batterie critique : démarrage impossible, branchez le secteur",
        "Battery critical: cannot start, plug in shore power",
    ),
    # power (kioskd/policies/power.py, drivers/power, issue 6) — add power messages here
    "power.no-data": Message(
        "Plus de mesure de la batterie : vérifiez le câble du moniteur de batterie, sinon appelez le technicien",
        "No battery reading: check the battery monitor's cable, else call the technician",
    ),
    "power.alarm.low-voltage": Message(
        "Tension batterie basse : branchez le secteur ou réduisez la consommation",
        "Battery voltage low: plug in shore power or reduce the load",
    ),
    "power.alarm.high-voltage": Message(
        "Tension batterie trop haute : débranchez le chargeur et appelez le technicien",
        "Battery voltage too high: unplug the charger and call the technician",
    ),
    "power.alarm.low-soc": Message(
        "Batterie presque vide : branchez le secteur", "Battery almost empty: plug in shore power"
    ),
    "power.alarm.low-starter-voltage": Message(
        "Batterie moteur faible : faites tourner le moteur avant de repartir",
        "Starter battery low: run the engine before leaving",
    ),
    "power.alarm.high-starter-voltage": Message(
        "Tension batterie moteur trop haute : appelez le technicien",
        "Starter battery voltage too high: call the technician",
    ),
    "power.alarm.low-temperature": Message(
        "Batterie trop froide : ne la chargez pas, appelez le technicien",
        "Battery too cold: do not charge it, call the technician",
    ),
    "power.alarm.high-temperature": Message(
        "Batterie trop chaude : réduisez la consommation et appelez le technicien",
        "Battery too hot: reduce the load and call the technician",
    ),
    "power.alarm.mid-voltage": Message(
        "Batteries déséquilibrées : appelez le technicien", "Batteries unbalanced: call the technician"
    ),
    "power.alarm.overload": Message(
        "Surcharge électrique : débranchez un appareil", "Power overload: unplug an appliance"
    ),
    "power.alarm.dc-ripple": Message(
        "Alimentation instable (ondulation) : appelez le technicien", "Unstable supply (DC ripple): call the technician"
    ),
    "power.alarm.low-ac-out-voltage": Message(
        "Tension des prises 230 V trop basse : débranchez un appareil",
        "Mains socket voltage too low: unplug an appliance",
    ),
    "power.alarm.high-ac-out-voltage": Message(
        "Tension des prises 230 V trop haute : débranchez les appareils et appelez le technicien",
        "Mains socket voltage too high: unplug the appliances and call the technician",
    ),
    "power.alarm.short-circuit": Message(
        "Court-circuit sur les prises 230 V : débranchez les appareils et appelez le technicien",
        "Short circuit on the mains sockets: unplug the appliances and call the technician",
    ),
    "power.alarm.bms-lockout": Message(
        "Batterie coupée par sa protection : branchez le secteur et appelez le technicien",
        "Battery cut off by its protection: plug in shore power and call the technician",
    ),
    "power.alarm.low-battery": Message(
        "Batterie de secours faible : branchez le secteur", "Backup battery low: plug in shore power"
    ),
    "power.alarm.replace-battery": Message(
        "Batterie de l'onduleur usée : prévenez le technicien pour la remplacer",
        "UPS battery worn out: tell the technician to replace it",
    ),
    "power.shore.connected": Message("Secteur branché", "Shore power connected"),
    "power.shore.disconnected": Message("Secteur débranché : sur batterie", "Shore power unplugged: on battery"),
    "power.warn": Message(
        "Batterie faible ({soc} %) : pensez à brancher le secteur",
        "Battery low ({soc}%): plug in shore power soon",
    ),
    "power.critical": Message(
        "Batterie critique ({soc} %) : fin de session et arrêt de la station",
        "Battery critical ({soc}%): ending the session and shutting down",
    ),
    "power.ignition.on": Message("Contact mis : la station passe en mode route", "Ignition on: station travelling"),
    "power.ignition.off": Message("Contact coupé : station prête", "Ignition off: station ready"),
    # issue 20: the UPS's own verdict, silent parts, VE.Direct faults
    "power.critical.ups": Message(
        "L'onduleur annonce la fin de sa batterie : fin de session et arrêt de la station",
        "The UPS says its battery is about to go: ending the session and shutting down",
    ),
    "power.silent": Message(
        "Plus de nouvelles de « {part} » : compté comme hors secteur, vérifiez son câble",
        "No news from “{part}”: counted as off shore power, check its cable",
    ),
    "power.fault.battery-voltage-high": Message(
        "Chargeur arrêté : tension batterie trop haute, appelez le technicien",
        "Charger stopped: battery voltage too high, call the technician",
    ),
    "power.fault.charger-hot": Message(
        "Chargeur trop chaud : dégagez ses aérations et réduisez la consommation",
        "Charger too hot: clear its vents and reduce the load",
    ),
    "power.fault.charger-fault": Message(
        "Panne du chargeur : la batterie ne se recharge plus, appelez le technicien",
        "Charger fault: the battery no longer charges, call the technician",
    ),
    "power.fault.bulk-time": Message(
        "Charge trop longue : batterie peut-être usée, prévenez le technicien",
        "Charging took too long: the battery may be worn, tell the technician",
    ),
    "power.fault.solar-input": Message(
        "Entrée solaire hors limites : le chargeur solaire s'est protégé, appelez le technicien",
        "Solar input out of range: the solar charger protected itself, call the technician",
    ),
    "power.fault.charger-network": Message(
        "Chargeur : liaison perdue avec la batterie ou un autre appareil, appelez le technicien",
        "Charger: link lost with the battery or another device, call the technician",
    ),
    "power.off.switch": Message(
        "Chargeur ou onduleur éteint par son interrupteur : rallumez-le",
        "Charger or inverter switched off at its switch: switch it back on",
    ),
    "power.off.remote": Message(
        "Chargeur ou onduleur éteint à distance (entrée de commande) : appelez le technicien",
        "Charger or inverter switched off by its remote input: call the technician",
    ),
    "power.off.protection": Message(
        "Chargeur ou onduleur arrêté par sa protection : réduisez la consommation, appelez le technicien",
        "Charger or inverter stopped by its protection: reduce the load, call the technician",
    ),
    "power.off.bms": Message(
        "Chargeur ou onduleur coupé par la protection de la batterie : branchez le secteur",
        "Charger or inverter cut off by the battery's protection: plug in shore power",
    ),
    "power.off.engine": Message(
        "Chargeur arrêté : moteur coupé (détection d'arrêt moteur)",
        "Charger stopped: engine off (engine shutdown detection)",
    ),
    # session
    "session.opened": Message("Nouveau citoyen : session ouverte", "New citizen: session opened"),
    "session.unconfined": Message(
        "Navigateur du citoyen non isolé (pas de droit de montage) : ce qu'il écrit hors de sa session peut "
        "rester. Appelez le technicien",
        "The citizen's browser is not confined (no right to mount): what it writes outside its session may stay. "
        "Call the technician",
    ),
    "session.tampered": Message(
        "Effacement vérifié ; {count} élément(s) de la session avaient été détournés (liens…) : supprimés sans les "
        "suivre",
        "Wipe verified; {count} part(s) of the session had been tampered with (links…): removed without following",
    ),
    "session.idle.warning": Message(
        "Session inactive : effacement dans {seconds} s (touchez l'écran ou appuyez pour continuer)",
        "Session idle: wipe in {seconds} s (touch the screen or press to continue)",
    ),
    "refused.privacy.off": Message(
        "Écrans éteints : démarrez la station pour masquer l'écran citoyen",
        "Screens are off: start the station to hide the citizen screen",
    ),
    "refused.handover.curtain": Message(
        "Écran citoyen masqué : montrez-le avant de donner la main au citoyen",
        "Citizen screen hidden: show it before handing the controls to the citizen",
    ),
    "refused.confidential.curtain": Message(
        "Écran citoyen masqué : montrez-le avant la saisie confidentielle",
        "Citizen screen hidden: show it before the confidential entry",
    ),
    "refused.no_session": Message(
        "Aucun citoyen en cours : ouvrez une session d'abord", "No citizen session: open one first"
    ),
    "session.wiped": Message("Données du citoyen effacées et vérifiées", "Citizen data wiped and verified"),
    "wipe.failed": Message(
        "Effacement incomplet ({handler}) : appelez le technicien ou relancez l'effacement",
        "Wipe incomplete ({handler}): call the technician or retry the wipe",
    ),
    # the state disk (kioskd/records/store.py, kioskd/session/journal.py, issue 18)
    "store.set_aside": Message(
        "Base de la station illisible ({problem}) : mise de côté ({path}), une nouvelle est créée ; "
        "appelez le technicien",
        "The station's store could not be read ({problem}): set aside ({path}), a new one is made; call the technician",
    ),
    "store.unwritable": Message(
        "Disque de la station plein ou en panne ({problem}) : {waiting} reçu(s) d'effacement en attente, écrits dès "
        "que le disque le permet ; appelez le technicien",
        "The station's disk is full or failing ({problem}): {waiting} wipe receipt(s) waiting, written as soon as "
        "the disk allows; call the technician",
    ),
    "journal.unwritable": Message(
        "Disque de la station plein ou en panne ({problem}) : l'effacement a eu lieu sans son journal ; "
        "libérez de la place ou appelez le technicien",
        "The station's disk is full or failing ({problem}): the wipe ran without its journal; "
        "free some space or call the technician",
    ),
    "refused.journal": Message(
        "Données du citoyen effacées, mais pas de nouvelle session : le disque de la station est plein ou en "
        "panne ({problem}) ; libérez de la place ou appelez le technicien",
        "The citizen's data is wiped, but no new session can open: the station's disk is full or failing "
        "({problem}); free some space or call the technician",
    ),
    "refused.workspace": Message(
        "Pas de nouvelle session : l'espace de travail ne peut être créé ({problem}) ; appelez le technicien",
        "No new session: its workspace cannot be made ({problem}); call the technician",
    ),
    "doctor.store.set_aside": Message(
        "La base de la station était illisible et a été mise de côté ({path}) : transmettez-la au support",
        "The station's store could not be read and was set aside ({path}): hand it to support",
    ),
    "doctor.store.unwritable": Message(
        "La base de la station ne s'écrit plus ({problem}) : libérez de la place dans le disque d'état",
        "The station's store cannot be written ({problem}): free some space on the state disk",
    ),
    "doctor.retention.paused": Message(
        "Effacement des anciennes statistiques suspendu : {why} ; vérifiez l'horloge du PC (NTP)",
        "Deletion of old figures paused: {why}; check the PC's clock (NTP)",
    ),
    # modem
    "modem.signal.weak": Message("Réseau mobile faible ({quality} %)", "Weak mobile signal ({quality}%)"),
    "modem.offline": Message("Pas d'accès à Internet", "No Internet access"),
    # connectivity (kioskd/policies/connectivity.py, drivers/modem, issue 7)
    "modem.absent": Message(
        "Modem 4G introuvable (débranché ou redémarrage USB) : il sera repris dès son retour",
        "LTE modem not found (unplugged or USB reset): it is picked up again as soon as it is back",
    ),
    "modem.sim.missing": Message(
        "Pas de carte SIM dans le modem : vérifiez la carte SIM du véhicule, sinon appelez le technicien",
        "No SIM card in the modem: check the vehicle's SIM card, else call the technician",
    ),
    "modem.sim.locked": Message(
        "Carte SIM verrouillée (code PIN ou PUK) : appelez le technicien",
        "SIM card locked (PIN or PUK): call the technician",
    ),
    "modem.denied": Message(
        "Le réseau mobile refuse la carte SIM : appelez le technicien",
        "The mobile network refuses the SIM card: call the technician",
    ),
    "modem.no_network": Message(
        "Pas de réseau mobile ici (zone blanche ?) : Internet indisponible",
        "No mobile network here (dead zone?): no Internet",
    ),
    "modem.no_internet": Message(
        "Réseau mobile connecté, mais Internet ne répond pas",
        "Mobile network connected, but the Internet does not answer",
    ),
    "modem.recovery.reconnect": Message(
        "Internet coupé depuis {minutes} min : reconnexion du modem (essai {attempt}, suivant dans {next} min)",
        "No Internet for {minutes} min: reconnecting the modem (attempt {attempt}, next in {next} min)",
    ),
    "modem.recovery.reset": Message(
        "Internet toujours coupé ({minutes} min) : redémarrage du modem (essai {attempt}, suivant dans {next} min)",
        "Still no Internet ({minutes} min): restarting the modem (attempt {attempt}, next in {next} min)",
    ),
    "modem.recovery.failed": Message(
        "Le modem n'a pas accepté la commande ({step}) : nouvel essai plus tard, appelez le technicien si cela dure",
        "The modem refused the command ({step}): trying again later, call the technician if it lasts",
    ),
    "modem.recovery.done": Message("Internet rétabli", "Internet is back"),
    "stop.set": Message("Arrêt : {stop}", "Stop: {stop}"),
    "stop.cleared": Message("Aucun arrêt en cours", "No current stop"),
    "atlas.header": Message(
        "rang  arrêt                     signal  Internet  échantillons",
        "rank  stop                      signal  Internet  samples",
    ),
    "atlas.empty": Message(
        "Pas encore de mesure : nommez l'arrêt avec « kioskctl stop NOM »",
        "No samples yet: name the stop with 'kioskctl stop NAME'",
    ),
    # uplinks through NetworkManager (kioskd/policies/connectivity.py, drivers/network, issue 21)
    "uplink.backup": Message(
        "Internet par {operator} ({uplink}) : le lien préféré {preferred} ne répond pas",
        "Internet through {operator} ({uplink}): the preferred link {preferred} does not answer",
    ),
    "uplink.in_use": Message("lien {uplink}", "link {uplink}"),
    "atlas.uplink.works": Message("{operator} passe ({reach} %)", "{operator} works ({reach}%)"),
    "atlas.uplink.fails": Message("{operator} ne passe pas ({reach} %)", "{operator} does not work ({reach}%)"),
    "panel.field.uplink": Message("Lien Internet utilisé", "Internet link in use"),
    "label.uplink": Message("  lien", "  link"),
    "uplink.probe.ok": Message("répond", "answers"),
    "uplink.probe.unreachable": Message("ne répond pas", "no answer"),
    "uplink.probe.wrong-status": Message("réponse inattendue (portail ?)", "unexpected answer (portal?)"),
    "uplink.probe.dns-failed": Message("nom introuvable (DNS)", "name not found (DNS)"),
    "uplink.probe.none": Message("pas encore testé", "not tested yet"),
    "uplink.standby": Message("SIM {slot} en attente", "SIM {slot} waiting"),
    "uplink.used": Message("en service", "in use"),
    "panel.uplinks.title": Message("Liens Internet", "Internet links"),
    "panel.uplinks.name": Message("Lien", "Link"),
    "panel.uplinks.operator": Message("Opérateur", "Operator"),
    "panel.uplinks.interface": Message("Interface", "Interface"),
    "panel.uplinks.signal": Message("Signal", "Signal"),
    "panel.uplinks.probe": Message("Test Internet", "Internet test"),
    "panel.field.cell": Message("Cellule", "Cell"),
    "visio.possible": Message(
        "Visio possible ici : la connexion tient un appel vidéo", "Video call possible here: the link holds one"
    ),
    "visio.not_possible": Message(
        "Visio déconseillée ici : connexion trop lente ou instable",
        "Video call not advised here: link too slow or unstable",
    ),
    "atlas.uplink.visio": Message("visio {visio} %", "video call {visio}%"),
    # devices
    "device.fault.unknown": Message(
        "Problème matériel ({fault}) : appelez le technicien", "Device problem ({fault}): call the technician"
    ),
    "device.unplugged": Message("{device} débranché : vérifiez le câble", "{device} unplugged: check the cable"),
    "device.back": Message("{device} de nouveau disponible", "{device} available again"),
    "device.backend.failed": Message(
        "Un appareil a eu une erreur imprévue et redémarre tout seul : si cela se répète, appelez le technicien",
        "A device hit an unexpected error and restarts by itself: if it happens again, call the technician",
    ),
    # button, audio, camera (drivers/button, drivers/audio, drivers/camera, issue 9)
    "audio.no-output": Message(
        "Casque ou haut-parleur introuvable : branchez le casque USB",
        "No headset or speaker found: plug in the USB headset",
    ),
    "audio.no-microphone": Message(
        "Micro introuvable : branchez le casque USB (visio impossible sans micro)",
        "No microphone found: plug in the USB headset (no video call without one)",
    ),
    "audio.unreachable": Message(
        "Le son ne répond pas : redémarrez la station, sinon appelez le technicien",
        "Audio is not responding: restart the station, else call the technician",
    ),
    "camera.absent": Message("Caméra introuvable : vérifiez son câble USB", "Camera not found: check its USB cable"),
    "camera.black": Message(
        "Image de la caméra noire : retirez le cache de l'objectif", "Camera picture is black: remove the lens cover"
    ),
    "camera.frozen": Message(
        "Image de la caméra figée : débranchez-la et rebranchez-la", "Camera picture frozen: unplug it and plug it back"
    ),
    "camera.held": Message(
        "Caméra encore utilisée par un programme après l'effacement : appelez le technicien",
        "Camera still used by a program after the wipe: call the technician",
    ),
    # printer (drivers/printer, issue 4) — add printer messages here
    "printer.media-low": Message(
        "Papier bientôt épuisé : préparez une ramette pour le bac 1", "Paper low: have paper ready for tray 1"
    ),
    "printer.toner-empty": Message("Toner vide : remplacez la cartouche", "Toner empty: replace the cartridge"),
    "printer.marker-supply-low": Message(
        "Encre ou toner bientôt vide : prévoyez une cartouche", "Ink or toner low: get a spare cartridge"
    ),
    "printer.marker-supply-empty": Message(
        "Encre ou toner vide : remplacez la cartouche", "Ink or toner empty: replace the cartridge"
    ),
    "printer.door-open": Message("Porte de l'imprimante ouverte : refermez-la", "Printer door open: close it"),
    "printer.cover-open": Message("Capot de l'imprimante ouvert : refermez-le", "Printer cover open: close it"),
    "printer.input-tray-missing": Message(
        "Bac à papier absent : remettez-le en place", "Paper tray missing: put it back in place"
    ),
    "printer.output-area-full": Message(
        "Bac de sortie plein : retirez les feuilles imprimées", "Output tray full: take out the printed sheets"
    ),
    "printer.refused": Message(
        "L'impression a été refusée : réessayez, puis appelez le technicien",
        "The print job was refused: try again, then call the technician",
    ),
    "printer.document-unreadable": Message(
        "Document illisible : enregistrez-le à nouveau puis relancez l'impression",
        "Unreadable document: save it again, then print again",
    ),
    "printer.media-empty": Message("Plus de papier : rechargez le bac 1", "Out of paper: refill tray 1"),
    "printer.media-jam": Message(
        "Bourrage papier : ouvrez l'imprimante et retirez la feuille",
        "Paper jam: open the printer and remove the sheet",
    ),
    "printer.toner-low": Message("Toner bientôt vide : prévoyez une cartouche", "Toner low: get a spare cartridge"),
    "printer.offline": Message(
        "Imprimante injoignable : vérifiez qu'elle est allumée et branchée",
        "Printer unreachable: check that it is on and plugged in",
    ),
    "printer.paused": Message("Imprimante en pause", "Printer paused"),
    "doctor.printer.no_queue": Message(
        "File d'impression absente ou incomplète : branchez et allumez l'imprimante (USB ou réseau), vérifiez "
        "« device » dans [devices.printer] du profil ; kioskd crée la file dès que l'imprimante répond",
        "Print queue missing or incomplete: plug in and switch on the printer (USB or network), check 'device' in "
        "the profile's [devices.printer]; kioskd creates the queue as soon as the printer answers",
    ),
    # scanner and scans (drivers/scanner, kioskd/policies/scanning_pipeline.py, issue 5) — add scanner messages here
    "scanner.jammed": Message("Bourrage du scanner : retirez la feuille", "Scanner jam: remove the sheet"),
    "scanner.no-docs": Message("Chargeur vide : posez les feuilles", "Feeder empty: load the sheets"),
    "scanner.cover-open": Message("Capot du scanner ouvert : refermez-le", "Scanner cover open: close it"),
    "scanner.busy": Message(
        "Scanner occupé par un autre programme : attendez un instant puis relancez le scan",
        "Scanner busy with another program: wait a moment, then scan again",
    ),
    "scanner.io-error": Message(
        "Le scanner ne répond pas : éteignez-le, rallumez-le, puis relancez le scan",
        "The scanner is not responding: switch it off and on, then scan again",
    ),
    "scanner.unplugged": Message(
        "Scanner débranché : vérifiez son câble USB et qu'il est allumé",
        "Scanner unplugged: check its USB cable and that it is switched on",
    ),
    "scan.done": Message("Scan prêt : {pages} page(s), {size_kb} Ko", "Scan ready: {pages} page(s), {size_kb} kB"),
    "scan.reduced": Message(
        "Scan prêt : {pages} page(s), {size_kb} Ko, réduit à {dpi} dpi pour tenir dans {budget_kb} Ko : "
        "vérifiez qu'il reste lisible",
        "Scan ready: {pages} page(s), {size_kb} kB, reduced to {dpi} dpi to fit in {budget_kb} kB: "
        "check that it is still legible",
    ),
    "scan.kept": Message(
        "{pages} page(s) scannée(s) et gardée(s), arrêt à la page {page} : réglez l'incident puis scannez la suite",
        "{pages} page(s) scanned and kept, stopped at page {page}: fix the problem, then scan the rest",
    ),
    "scan.kept.jammed": Message(
        "{pages} page(s) scannée(s), bourrage à la page {page} : retirez la feuille et scannez la suite "
        "à partir de la page {page}",
        "{pages} page(s) scanned, jam at page {page}: remove the sheet and scan the rest from page {page}",
    ),
    "scan.too-big": Message(
        "Document trop lourd : {smallest_kb} Ko au minimum pour {budget_kb} Ko permis ; "
        "scannez moins de pages à la fois",
        "Document too large: {smallest_kb} kB at the least for {budget_kb} kB allowed; scan fewer pages at a time",
    ),
    "scan.empty": Message(
        "Aucune page scannée : posez le document et relancez", "No page scanned: place the document and try again"
    ),
    "scan.write-failed": Message(
        "Scan non enregistré ({pages} page(s)) : l'espace de la session est plein, appelez le technicien",
        "Scan not saved ({pages} page(s)): the session space is full, call the technician",
    ),
    "displays.citizen.unplugged": Message(
        "Écran citoyen débranché : vérifiez le câble", "Citizen screen unplugged: check the cable"
    ),
    "displays.curtain.on": Message("Écran citoyen masqué", "Citizen screen hidden"),
    "displays.curtain.off": Message("Écran citoyen visible", "Citizen screen visible"),
    # the agent panel (kioskd/api/static/, issue 10): its own words; device states come from the API's JSON
    "panel.title": Message("Station", "Station"),
    "panel.lang.other": Message("English", "Français"),
    "panel.state.off": Message("Station éteinte", "Station off"),
    "panel.state.starting": Message("Démarrage…", "Starting…"),
    "panel.state.ready": Message("Prête", "Ready"),
    "panel.state.in_session": Message("Citoyen en cours – {minutes} min", "Citizen in session – {minutes} min"),
    "panel.state.wiping": Message("Effacement…", "Wiping…"),
    "panel.state.wipe_failed": Message("Effacement incomplet", "Wipe incomplete"),
    "panel.state.travelling": Message("En route", "Travelling"),
    "panel.state.shutting_down": Message("Arrêt en cours…", "Shutting down…"),
    "panel.action.start": Message("Démarrer", "Start"),
    "panel.action.next": Message("Citoyen suivant", "Next citizen"),
    "panel.action.retry_wipe": Message("Réessayer l'effacement", "Retry the wipe"),
    "panel.action.end_of_day": Message("Fin de journée", "End of day"),
    "panel.action.busy": Message("Patientez…", "Please wait…"),
    "panel.confirm.end_of_day": Message(
        "Terminer la journée ? La session en cours sera effacée et la station s'éteindra.",
        "End the day? The current session will be wiped and the station will shut down.",
    ),
    "panel.confirm.yes": Message("Oui, terminer la journée", "Yes, end the day"),
    "panel.confirm.no": Message("Annuler", "Cancel"),
    "panel.connection.lost": Message("Connexion perdue – reconnexion…", "Connection lost – reconnecting…"),
    "panel.locked.title": Message("Panneau verrouillé", "Panel locked"),
    "panel.locked.text": Message(
        "Ouvrez le panneau avec le lien que donne la commande « kioskctl panel » sur ce poste.",
        "Open the panel with the link that the command 'kioskctl panel' gives on this computer.",
    ),
    "panel.error.network": Message(
        "La station ne répond pas : réessayez dans un instant", "The station is not answering: try again in a moment"
    ),
    "panel.session.counts": Message(
        "{scans} scan(s) · {prints} impression(s) · {downloads} téléchargement(s)",
        "{scans} scan(s) · {prints} print(s) · {downloads} download(s)",
    ),
    "panel.sessions_today": Message("{count} citoyen(s) aujourd'hui", "{count} citizen(s) today"),
    "panel.tile.receipt": Message("Dernier effacement", "Last wipe"),
    "panel.tile.audio": Message("Son et caméra", "Sound and camera"),
    "panel.field.rsrp": Message("RSRP (dBm)", "RSRP (dBm)"),
    "panel.field.rsrq": Message("RSRQ (dB)", "RSRQ (dB)"),
    "panel.field.sinr": Message("SINR (dB)", "SINR (dB)"),
    "panel.field.sim": Message("Carte SIM", "SIM card"),
    "panel.field.layout": Message("Disposition", "Layout"),
    "panel.field.probe": Message("Test", "Check"),
    "panel.field.outcome": Message("Résultat", "Result"),
    "panel.field.checked_at": Message("Vérifié à", "Checked at"),
    "panel.field.failing_since": Message("En panne depuis", "Failing since"),
    "panel.field.next_step_at": Message("Prochaine relance", "Next recovery"),
    "panel.field.recovery": Message("Relance", "Recovery"),
    "panel.field.attempts": Message("Tentatives", "Attempts"),
    "panel.field.stop": Message("Arrêt", "Stop"),
    "panel.field.stop_source": Message("Arrêt donné par", "Stop from"),
    "panel.field.source": Message("Source", "Source"),
    "panel.field.soc": Message("Charge", "Charge"),
    "panel.field.time_to_go": Message("Autonomie", "Time left"),
    "panel.field.voltage": Message("Tension", "Voltage"),
    "panel.field.power": Message("Puissance", "Power"),
    "panel.field.ignition": Message("Contact", "Ignition"),
    "panel.field.technology": Message("Technologie", "Technology"),
    "panel.field.operator": Message("Opérateur", "Operator"),
    "panel.field.signal": Message("Signal", "Signal"),
    "panel.field.internet": Message("Internet", "Internet"),
    "panel.field.registration": Message("Réseau", "Network"),
    "panel.field.display": Message("Affichage", "Display"),
    "panel.field.status": Message("État", "State"),
    "panel.field.name": Message("Appareil", "Device"),
    "panel.field.present": Message("Présent", "Present"),
    "panel.field.pressed": Message("Appuyé", "Pressed"),
    "panel.field.led": Message("Voyant", "Light"),
    "panel.field.sink": Message("Haut-parleur", "Speaker"),
    "panel.field.volume": Message("Volume", "Volume"),
    "panel.field.mic": Message("Micro", "Microphone"),
    "panel.field.camera": Message("Caméra", "Camera"),
    "panel.power.shore": Message("Secteur", "Shore power"),
    "panel.power.battery": Message("Sur batterie", "On battery"),
    "panel.power.charging": Message("en charge", "charging"),
    "panel.power.chart": Message("Charge de la batterie, dernières {hours} h", "Battery charge, last {hours} h"),
    "panel.power.chart_empty": Message("Historique en cours de collecte", "History being collected"),
    "panel.registration.home": Message("enregistré", "registered"),
    "panel.registration.roaming": Message("itinérance", "roaming"),
    "panel.registration.searching": Message("recherche…", "searching…"),
    "panel.registration.idle": Message("inactif", "idle"),
    "panel.registration.denied": Message("refusé", "denied"),
    "panel.registration.unknown": Message("inconnu", "unknown"),
    "panel.output.agent": Message("Écran agent", "Agent screen"),
    "panel.output.citizen": Message("Écran citoyen", "Citizen screen"),
    "panel.output.other": Message("Autre écran", "Other screen"),
    "panel.display.connected": Message("branché", "connected"),
    "panel.display.unplugged": Message("débranché", "unplugged"),
    "panel.display.mirror": Message("Le citoyen voit votre écran", "The citizen sees your screen"),
    "panel.display.curtain": Message("Le citoyen voit un écran neutre", "The citizen sees a neutral screen"),
    "panel.display.off": Message("Rien n'est montré au citoyen", "Nothing is shown to the citizen"),
    "panel.privacy.hide": Message("Masquer l'écran citoyen", "Hide the citizen screen"),
    "panel.privacy.show": Message("Montrer l'écran citoyen", "Show the citizen screen"),
    # hand-over (kioskd/policies/handover.py, issue 23)
    "panel.handover.on": Message("Main au citoyen", "Hand over to the citizen"),
    "panel.handover.off": Message("Reprendre la main", "Take the controls back"),
    "panel.confidential.on": Message("Saisie confidentielle", "Confidential entry"),
    "panel.confidential.off": Message("Fin de la saisie confidentielle", "End the confidential entry"),
    "panel.handover.state.on": Message("Le citoyen a la main", "The citizen has the controls"),
    "panel.handover.state.confidential": Message(
        "Le citoyen saisit une information confidentielle (appui court sur le bouton pour reprendre la main)",
        "The citizen is typing something confidential (short press on the button to take the controls back)",
    ),
    "handover.on": Message("Le citoyen a la main", "The citizen has the controls"),
    "handover.off": Message(
        "Le citoyen regarde (ses commandes sont désactivées)", "The citizen watches (their controls are disabled)"
    ),
    "handover.confidential": Message(
        "Saisie confidentielle : votre écran est masqué, votre clavier et votre souris sont désactivés",
        "Confidential entry: your screen is hidden, your keyboard and mouse are disabled",
    ),
    "panel.scanner.idle": Message("Prêt", "Ready"),
    "panel.scanner.scanning": Message("Numérisation…", "Scanning…"),
    "panel.scanner.fault": Message("En défaut", "Fault"),
    "panel.scanner.absent": Message("Absent", "Absent"),
    "panel.scan.button": Message("Scanner", "Scan"),
    "panel.scan.source": Message("Source", "Source"),
    "panel.scan.flatbed": Message("Vitre", "Glass"),
    "panel.scan.adf": Message("Chargeur (toutes les feuilles)", "Feeder (all sheets)"),
    "panel.scan.duplex": Message("Chargeur recto verso (toutes les feuilles)", "Feeder, both sides (all sheets)"),
    "panel.scan.destination": Message("Site d'envoi", "Upload site"),
    "panel.scan.budget": Message("{name} (au plus {size})", "{name} (at most {size})"),
    "panel.scan.none": Message("Aucun scan pour ce citoyen", "No scan for this citizen"),
    "panel.scan.page1": Message("Page 1 de {file}", "Page 1 of {file}"),
    "panel.printer.idle": Message("Prête", "Ready"),
    "panel.printer.printing": Message("Impression…", "Printing…"),
    "panel.printer.stopped": Message("Arrêtée", "Stopped"),
    "panel.printer.unavailable": Message("Indisponible", "Unavailable"),
    "panel.jobs.none": Message("Aucune impression pour ce citoyen", "No print for this citizen"),
    "panel.job.line": Message("Impression {id}", "Print {id}"),
    "panel.job.pending": Message("en attente", "waiting"),
    "panel.job.held": Message("retenue", "held"),
    "panel.job.processing": Message("en cours", "printing"),
    "panel.job.stopped": Message("arrêtée", "stopped"),
    "panel.job.completed": Message("terminée", "done"),
    "panel.job.cancelled": Message("annulée", "cancelled"),
    "panel.job.aborted": Message("échouée", "failed"),
    "panel.audio.mic_on": Message("ouvert", "on"),
    "panel.camera.in_use": Message("en cours d'utilisation", "in use"),
    "panel.camera.free": Message("libre", "free"),
    "panel.receipt.ok": Message("Effacé et vérifié", "Wiped and verified"),
    "panel.receipt.failed": Message("Effacement incomplet", "Wipe incomplete"),
    "panel.receipt.line": Message(
        "Session {session} · {time} · {handlers} étapes en {seconds} s",
        "Session {session} · {time} · {handlers} steps in {seconds} s",
    ),
    "panel.receipt.none": Message("Pas encore d'effacement", "No wipe yet"),
    "panel.size.kb": Message("{n} Ko", "{n} kB"),
    # the citizen's USB stick's tile (kioskd.policies.media): its words, never a name found on it
    "panel.media.none": Message("Aucune clé USB branchée", "No USB stick plugged in"),
    "panel.media.export": Message("Copier sur la clé", "Copy to the stick"),
    "panel.media.eject": Message("Éjecter la clé", "Eject the stick"),
    "panel.media.busy": Message("Copie en cours…", "Copying…"),
    "panel.media.choose": Message(
        "Documents à copier (aucun coché : tous)", "Documents to copy (none ticked: all of them)"
    ),
    "panel.media.all": Message("Copie de tous les documents ({count})", "Copying every document ({count})"),
    "panel.media.chosen": Message("Copie des documents cochés ({count})", "Copying the ticked documents ({count})"),
    "panel.media.no_scans": Message("Aucun document numérisé : scannez d'abord", "No scanned document: scan first"),
    "panel.size.mb": Message("{n} Mo", "{n} MB"),
    # activity figures (kioskd/records/stats.py, issue 13)
    "stats.title": Message(
        "Activité {month} : {visits} visite(s), durée moyenne {minutes} min, {scans} scan(s), {prints} impression(s)",
        "Activity {month}: {visits} visit(s), mean duration {minutes} min, {scans} scan(s), {prints} print(s)",
    ),
    "stats.empty": Message("Aucune visite enregistrée en {month}", "No visit recorded in {month}"),
    "stats.per_stop": Message("Par arrêt :", "Per stop:"),
    "stats.per_week": Message("Par semaine :", "Per week:"),
    "stats.mean": Message("(moy. {minutes} min)", "(mean {minutes} min)"),
    "stats.week": Message("S{week} (lun. {monday})", "W{week} (Mon {monday})"),
    "stats.hour": Message("{hour} h ({visits})", "{hour}:00 ({visits})"),
    "stats.handover": Message(
        "Main au citoyen : {handovers} fois ({handover_minutes} min) ; saisies confidentielles : {confidential} "
        "({confidential_minutes} min)",
        "Handed over to the citizen: {handovers} times ({handover_minutes} min); confidential entries: "
        "{confidential} ({confidential_minutes} min)",
    ),
    "stats.busiest": Message("Heures les plus chargées : {hours}", "Busiest hours: {hours}"),
    "stats.no_stop": Message("(arrêt non renseigné)", "(stop not named)"),
    "stats.chart.per_stop": Message("Visites par arrêt — {month}", "Visits per stop — {month}"),
    "stats.chart.per_week": Message("Visites par semaine — {month}", "Visits per week — {month}"),
    "stats.chart.visits": Message("visites", "visits"),
    "stats.column.day": Message("date", "date"),
    "stats.column.hour": Message("heure", "hour"),
    "stats.column.stop": Message("arrêt", "stop"),
    "stats.column.minutes": Message("durée (min)", "duration (min)"),
    "stats.column.scans": Message("scans", "scans"),
    "stats.column.prints": Message("impressions", "prints"),
    "stats.column.reason": Message("fin", "end"),
    # fleet link (kioskd/fleet/, issue 13)
    "fleet.auth_failed": Message(
        "Liaison avec le bureau refusée (identifiant ou mot de passe) : appelez le technicien",
        "Link to the office refused (user name or password): call the technician",
    ),
    "fleet.tls_failed": Message(
        "Liaison avec le bureau impossible (certificat) : appelez le technicien",
        "Cannot link to the office (certificate): call the technician",
    ),
    "fleet.config": Message(
        "Liaison avec le bureau mal configurée ({detail}) : appelez le technicien",
        "Link to the office misconfigured ({detail}): call the technician",
    ),
    "fleet.unknown_command": Message("Commande inconnue : {command}", "Unknown command: {command}"),
    # kioskctl status labels
    "label.station": Message("Station", "Station"),
    "label.power": Message("Énergie", "Power"),
    "label.modem": Message("Réseau", "Network"),
    "label.displays": Message("Écrans", "Screens"),
    "label.scanner": Message("Scanner", "Scanner"),
    "label.printer": Message("Imprimante", "Printer"),
    "label.button": Message("Bouton", "Button"),
    "label.audio": Message("Audio", "Audio"),
    "label.camera": Message("Caméra", "Camera"),
    "label.inputs": Message("Commandes du citoyen", "Citizen's controls"),
    "label.session": Message("Session", "Session"),
    "label.update": Message("Système", "System"),
    "label.connectivity": Message("Connexion Internet", "Internet link"),
    "label.notices": Message("Alertes", "Notices"),
    "word.shore": Message("secteur", "shore"),
    "word.battery": Message("batterie", "battery"),
    "word.ignition": Message("contact mis", "ignition on"),
    "word.none": Message("aucune", "none"),
    "word.absent": Message("absent", "absent"),
    "word.yes": Message("oui", "yes"),
    "word.no": Message("non", "no"),
    "word.no_data": Message("pas de mesure", "no data"),
    "word.left": Message("restantes", "left"),
    "word.mirror": Message("miroir", "mirror"),
    "word.curtain": Message("masqué", "hidden"),
    "word.off": Message("éteints", "off"),
    "word.internet": Message("Internet", "Internet"),
    "word.mic_muted": Message("micro coupé", "mic muted"),
    "word.age": Message("depuis", "for"),
    "word.scans": Message("scans", "scans"),
    "word.downloads": Message("téléchargements", "downloads"),
    "word.prints": Message("impressions", "prints"),
    # kioskctl doctor: what the technician should do about a line
    "doctor.device_error": Message(
        "Le périphérique ne répond pas : vérifiez son câble et le journal (journalctl -u kioskd)",
        "The device does not answer: check its cable and the journal (journalctl -u kioskd)",
    ),
    "doctor.busy": Message(
        "Citoyen en cours : test actif non lancé (relancez entre deux citoyens)",
        "Citizen in session: active test skipped (run again between citizens)",
    ),
    "doctor.power.no_reading": Message(
        "Aucune mesure d'énergie : vérifiez le câble VE.Direct ou le service NUT/UPower",
        "No power reading: check the VE.Direct cable or the NUT/UPower service",
    ),
    "doctor.power.low": Message("Batterie basse ({soc} %) : branchez le secteur", "Battery low ({soc} %): plug in"),
    "doctor.modem.absent": Message(
        "Modem absent : vérifiez la clé/carte LTE et le service ModemManager",
        "No modem: check the LTE stick/card and the ModemManager service",
    ),
    "doctor.modem.unregistered": Message(
        "Modem non enregistré ({registration}) : vérifiez la carte SIM, son code PIN et l'antenne",
        "Modem not registered ({registration}): check the SIM card, its PIN and the antenna",
    ),
    "doctor.modem.no_internet": Message(
        "Internet injoignable : vérifiez l'APN du profil et le forfait",
        "Internet unreachable: check the profile's APN and the data plan",
    ),
    "doctor.displays.agent_missing": Message(
        "Écran agent non détecté : vérifiez son câble et le nom de sortie du profil",
        "Agent screen not found: check its cable and the profile's output name",
    ),
    "doctor.displays.citizen_missing": Message(
        "Écran citoyen non détecté : vérifiez son câble et son alimentation",
        "Citizen screen not found: check its cable and power",
    ),
    "doctor.scanner.absent": Message(
        "Scanner absent : branchez-le (USB), allumez-le, vérifiez le nom du profil",
        "No scanner: plug it in (USB), switch it on, check the profile's device name",
    ),
    "doctor.scanner.fault": Message("Scanner en défaut ({fault})", "Scanner fault ({fault})"),
    "doctor.scanner.test": Message(
        "Le scan d'essai a échoué : posez une feuille sur la vitre, fermez le capot",
        "The test scan failed: put a sheet on the glass, close the lid",
    ),
    "doctor.printer.absent": Message(
        "Imprimante absente : vérifiez CUPS (lpstat -p) et le nom de file du profil",
        "No printer: check CUPS (lpstat -p) and the profile's queue name",
    ),
    "doctor.printer.fault": Message("Imprimante : {detail}", "Printer: {detail}"),
    "doctor.button.absent": Message(
        "Bouton absent : vérifiez son câblage et la broche (ou le périphérique) du profil",
        "No button: check its wiring and the profile's pin (or device)",
    ),
    "doctor.button.untested": Message(
        "Bouton non testé : kioskctl doctor --button 15 (le voyant clignote, appuyez)",
        "Button not tested: kioskctl doctor --button 15 (the LED blinks, press it)",
    ),
    "doctor.button.no_press": Message(
        "Aucun appui reçu en {seconds} s : vérifiez le câblage du bouton",
        "No press within {seconds} s: check the button's wiring",
    ),
    "doctor.audio.absent": Message(
        "Pas de sortie audio : branchez le casque ou le haut-parleur",
        "No audio output: plug in the headset or speaker",
    ),
    "doctor.audio.no_mic": Message(
        "Pas de micro : les visioconférences n'auront pas de son",
        "No microphone: video calls will have no sound",
    ),
    "doctor.inputs.missing": Message(
        "Commandes du citoyen introuvables : le citoyen ne pourra pas saisir lui-même (vérifiez [devices.inputs])",
        "The citizen's controls were not found: the citizen cannot type themselves (check [devices.inputs])",
    ),
    "doctor.camera.absent": Message(
        "Pas de webcam : les visioconférences n'auront pas d'image",
        "No webcam: video calls will have no picture",
    ),
    "doctor.clock.wrong": Message(
        "Horloge du PC fausse (année {year}) : vérifiez la synchronisation NTP et la pile du PC",
        "PC clock wrong (year {year}): check NTP sync and the PC's battery",
    ),
    "doctor.disk.full": Message(
        "Disque presque plein ({path}) : libérez de la place",
        "Disk almost full ({path}): free some space",
    ),
    "doctor.runtime.not_tmpfs": Message(
        "{path} n'est pas en mémoire (tmpfs) : des données de citoyens pourraient toucher le disque",
        "{path} is not on tmpfs: citizen data could reach the disk",
    ),
    "doctor.cups.privacy": Message(
        "CUPS garde l'historique ou les fichiers des impressions : installez image-build/cups/cupsd-kiosk.conf",
        "CUPS keeps print history or files: install image-build/cups/cupsd-kiosk.conf",
    ),
    "doctor.app_user.missing": Message(
        "Utilisateur {user} absent : installez systemd/kioskd.sysusers (systemd-sysusers)",
        "User {user} missing: install systemd/kioskd.sysusers (systemd-sysusers)",
    ),
    "doctor.verdict.ok": Message("OK", "OK"),
    "doctor.verdict.warn": Message("ATTENTION", "WARNING"),
    "doctor.verdict.fail": Message("ÉCHEC", "FAIL"),
    "doctor.verdict.info": Message("info", "info"),
    "cli.profile_ok": Message("{file} : profil valide", "{file}: profile is valid"),
    "cli.not_running": Message(
        "kioskd ne répond pas ({socket}) : est-il démarré ?",
        "kioskd is not answering ({socket}): is it running?",
    ),
    # A/B updates (kioskd.policies.update): the station is the update lock
    "update.ready": Message(
        "Mise à jour prête (version {version}) : elle s'appliquera au prochain démarrage",
        "Update ready (version {version}): it applies at the next start",
    ),
    "update.waiting": Message(
        "Mise à jour {version} en attente : elle s'installera quand aucun citoyen ne sera là",
        "Update {version} waiting: it installs once no citizen is here",
    ),
    "update.installing": Message(
        "Mise à jour {version} en cours d'écriture : pas de nouveau citoyen pendant quelques minutes",
        "Update {version} being written: no new citizen for a few minutes",
    ),
    "update.applied": Message("Mise à jour installée : version {version}", "Update installed: version {version}"),
    "update.rolled_back": Message(
        "Mise à jour refusée, retour à la version précédente ({running}) : la version {version} n'a pas démarré "
        "correctement. Le bureau est prévenu.",
        "Update refused, back to the previous version ({running}): version {version} did not start properly. "
        "The office is told.",
    ),
    "update.interrupted": Message(
        "Mise à jour {version} interrompue (coupure pendant l'écriture) : la version {running} reste en service, "
        "rien n'est perdu. Relancez la mise à jour.",
        "Update {version} interrupted (power cut while it was written): version {running} still runs, nothing is "
        "lost. Start the update again.",
    ),
    "update.refused": Message(
        "Mise à jour refusée : signature non valable ou fichier incomplet (rien n'a été écrit)",
        "Update refused: invalid signature or incomplete file (nothing was written)",
    ),
    "update.refused.signature": Message(
        "Mise à jour refusée : sa signature n'est pas valable (rien n'a été écrit)",
        "Update refused: its signature is not valid (nothing was written)",
    ),
    "update.refused.format": Message(
        "Mise à jour refusée : ce fichier n'est pas une mise à jour complète (rien n'a été écrit)",
        "Update refused: this file is not a whole update (nothing was written)",
    ),
    "update.refused.compatible": Message(
        "Mise à jour refusée : elle est destinée à un autre système (rien n'a été écrit)",
        "Update refused: it is meant for another system (nothing was written)",
    ),
    "update.refused.missing": Message(
        "Mise à jour introuvable : fichier absent ou illisible", "Update not found: missing or unreadable file"
    ),
    "update.refused.url": Message(
        "Adresse de mise à jour refusée : elle commence par http:// ou https:// et nomme un serveur",
        "Update address refused: it starts with http:// or https:// and names a server",
    ),
    "update.refused.hash_missing": Message(
        "Mise à jour par adresse refusée : il faut aussi son empreinte sha256 (64 chiffres hexadécimaux)",
        "Update by address refused: its sha256 (64 hex digits) is needed too",
    ),
    "update.refused.hash": Message(
        "Mise à jour refusée : le fichier téléchargé ne correspond pas à son empreinte (rien n'a été écrit)",
        "Update refused: the downloaded file does not match its hash (nothing was written)",
    ),
    "update.refused.download": Message(
        "Téléchargement de la mise à jour abandonné ({detail}) : rien n'a été écrit, le bureau peut la renvoyer",
        "Update download abandoned ({detail}): nothing was written, the office may send it again",
    ),
    "update.refused.space": Message(
        "Mise à jour refusée : pas assez de place sur la partition des données pour la télécharger",
        "Update refused: not enough room on the data partition to download it",
    ),
    "update.downloading": Message(
        "Mise à jour en téléchargement depuis {host} : elle s'installera quand aucun citoyen ne sera là",
        "Update downloading from {host}: it installs once no citizen is here",
    ),
    "update.failed": Message(
        "La mise à jour a échoué ({detail}) : la version actuelle reste en place",
        "The update failed ({detail}): the current version stays",
    ),
    "update.busy": Message("Une mise à jour est déjà en cours", "An update is already under way"),
    "update.unavailable": Message(
        "Ce PC ne prend pas de mises à jour A/B (pas de RAUC)", "This PC takes no A/B updates (no RAUC)"
    ),
    "refused.update.installing": Message(
        "Mise à jour en cours d'écriture : le prochain citoyen pourra être accueilli dans quelques minutes",
        "An update is being written: the next citizen can be welcomed in a few minutes",
    ),
    "update.status": Message("version {version} (racine {slot})", "version {version} (root {slot})"),
    "update.status.phase": Message(
        "mise à jour {target} : {phase} {progress} %", "update {target}: {phase} {progress} %"
    ),
    "cli.update.started": Message("Mise à jour {target} acceptée : {phase}", "Update {target} accepted: {phase}"),
    # generic
    "api.bad_request": Message("Requête invalide : {detail}", "Invalid request: {detail}"),
    "api.not_found": Message("Adresse inconnue de l'API : {detail}", "Unknown API address: {detail}"),
    # the panel's guard and its scans (kioskd/api/panel.py, issue 18): the same words for anyone, nothing of the station
    "api.refused.host": Message(
        "Adresse refusée : ouvrez le tableau de bord par http://127.0.0.1 ou http://localhost",
        "Address refused: open the panel at http://127.0.0.1 or http://localhost",
    ),
    "api.refused.origin": Message(
        "Requête refusée : elle ne vient pas du tableau de bord lui-même",
        "Request refused: it does not come from the panel itself",
    ),
    "api.refused.no_origin": Message(
        "Commande refusée : rechargez le tableau de bord et réessayez",
        "Command refused: reload the panel and try again",
    ),
    "api.refused.token": Message(
        "Accès refusé : ouvrez le lien donné par « kioskctl panel »",
        "Access refused: open the link given by 'kioskctl panel'",
    ),
    "api.scan_not_found": Message(
        "Ce scan n'existe pas (ou plus) dans la session en cours",
        "This scan does not exist (any more) in the current session",
    ),
    "sim.unknown_verb": Message("Commande de simulation inconnue : {verb}", "Unknown simulation command: {verb}"),
    # the citizen's USB stick (kioskd.policies.media)
    "label.media": Message("Clé USB du citoyen", "Citizen's USB stick"),
    "media.size.gb": Message("{n} Go", "{n} GB"),
    "media.size.mb": Message("{n} Mo", "{n} MB"),
    # a stick's state on kioskctl status's line (label, size and file system beside it, never a file name)
    "media.state.no": Message("branchée, non lue", "plugged in, not read"),
    "media.state.ro": Message("lecture seule", "read-only"),
    "media.state.rw": Message("copie en cours", "copying"),
    "media.plugged": Message(
        "Clé USB du citoyen : {label}, {size} (branchée)", "Citizen's USB stick: {label}, {size} (plugged in)"
    ),
    "media.mounted_ro": Message(
        "Clé USB du citoyen : lecture seule ({label}, {size})", "Citizen's USB stick: read-only ({label}, {size})"
    ),
    "media.mounted_rw": Message(
        "Clé USB du citoyen : copie en cours ({label}, {size})", "Citizen's USB stick: copying ({label}, {size})"
    ),
    "media.outside_session": Message(
        "Clé USB branchée hors session : elle ne sera lue qu'une fois le citoyen accueilli",
        "USB stick plugged in outside a session: it is only read once a citizen is in",
    ),
    "media.pulled": Message(
        "Clé USB retirée sans éjection : elle a été détachée, vérifiez ses fichiers sur un autre poste",
        "USB stick pulled out without eject: it was detached; check its files on another computer",
    ),
    "media.left_behind": Message(
        "Une clé USB du citoyen précédent est encore branchée : elle n'est pas ouverte, rendez-la-lui",
        "A stick of the previous citizen is still plugged in: it is not opened; give it back",
    ),
    "media.ejected": Message("Clé USB éjectée : vous pouvez la retirer", "USB stick ejected: you may pull it out"),
    "media.none": Message("Aucune clé USB montée pour ce citoyen", "No USB stick mounted for this citizen"),
    "media.nothing": Message("Aucun document numérisé à copier", "No scanned document to copy"),
    "media.absent": Message("Clé USB introuvable : rebranchez-la", "USB stick not found: plug it in again"),
    "media.corrupt": Message(
        "Clé USB illisible (système de fichiers abîmé) : rien n'a été lu",
        "USB stick unreadable (damaged file system): nothing was read",
    ),
    "media.unsupported": Message(
        "Clé USB d'un format non pris en charge (FAT32, exFAT ou NTFS attendus)",
        "USB stick in an unsupported format (FAT32, exFAT or NTFS expected)",
    ),
    "media.unknown-filesystem": Message(
        "Clé USB sans système de fichiers reconnu : rien n'a été lu",
        "USB stick without a recognised file system: nothing was read",
    ),
    "media.failed": Message(
        "La clé USB n'a pas pu être ouverte : voir `kioskctl doctor`",
        "The USB stick could not be opened: see `kioskctl doctor`",
    ),
    "media.exported": Message(
        "{files} document(s) copié(s) sur la clé, dossier « {folder} » : la clé est de nouveau en lecture seule",
        '{files} document(s) copied to the stick, folder "{folder}": the stick is read-only again',
    ),
    "media.export.full": Message(
        "Clé USB pleine : {files} document(s) copié(s) ; libérez de la place ou prenez une autre clé",
        "USB stick full: {files} document(s) copied; free some space or use another stick",
    ),
    "media.export.write_protected": Message(
        "Clé USB protégée en écriture (verrou sur la clé ?) : rien n'a été copié",
        "USB stick write-protected (lock switch?): nothing was copied",
    ),
    "media.export.pulled": Message(
        "Clé USB retirée pendant la copie : {files} document(s) copié(s) ; rebranchez-la et recommencez",
        "USB stick pulled out during the copy: {files} document(s) copied; plug it in and try again",
    ),
    "media.export.absent": Message(
        "Aucune clé USB montée : rien n'a été copié", "No USB stick mounted: nothing was copied"
    ),
    "media.export.io_error": Message(
        "Erreur d'écriture sur la clé USB : {files} document(s) copié(s)",
        "Write error on the USB stick: {files} document(s) copied",
    ),
}


def text(key: str, lang: Lang = "fr", **params: object) -> str:
    """The message ``key`` in ``lang`` with its parameters filled in.

    An unknown key is a programming error, reported as such instead of showing the agent a bare key."""
    message = CATALOGUE.get(key)
    if message is None:
        raise KeyError(f"no message {key!r} in the catalogue")
    template = message.fr if lang == "fr" else message.en
    return template.format(**{name: _in(value, lang) for name, value in params.items()})


def _in(value: object, lang: Lang) -> object:
    """A parameter as ``lang`` reads it: a ``Message`` parameter has a text per language."""
    if isinstance(value, Message):
        return value.fr if lang == "fr" else value.en
    return value


def both(key: str, **params: object) -> dict[str, str]:
    """The message in both languages, as the API serves it: ``{"key", "fr", "en"}``."""
    return {"key": key, "fr": text(key, "fr", **params), "en": text(key, "en", **params)}
