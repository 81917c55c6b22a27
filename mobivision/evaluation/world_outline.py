"""A very coarse world outline for the background of geolocation maps.

Coarse, hand-made from well-known coordinates (capes, ports, river mouths), for orientation only, not for
measurement: coastlines are cut straight across bays and gulfs, small islands are missing, and an error of a
hundred kilometres or more along any coast is normal. Natural Earth or similar data would be better but is a
download this project does not make.

Each entry is a closed ring of ``(lon, lat)`` vertices in degrees (the last vertex connects back to the first),
longitudes in [-180, 180]. A ring that crosses the antimeridian (Chukotka, Antarctica) simply steps from about
+180 to about -180; the drawing code splits such edges at ±180 and draws them the short way.
"""

from __future__ import annotations

Ring = tuple[tuple[float, float], ...]

NORTH_AMERICA: Ring = (
    (-168.0, 65.6),  # Cape Prince of Wales
    (-166.8, 68.3),  # Point Hope
    (-156.8, 71.3),  # Point Barrow
    (-135.0, 69.3),  # Mackenzie delta
    (-110.0, 67.8),  # Coronation Gulf
    (-96.0, 68.5),
    (-85.0, 69.5),  # Melville Peninsula
    (-86.0, 66.5),  # Repulse Bay
    (-94.0, 61.0),
    (-94.2, 58.8),  # Churchill
    (-92.4, 57.0),  # York Factory
    (-82.3, 55.1),  # Cape Henrietta Maria
    (-80.0, 51.3),  # James Bay
    (-78.9, 54.5),
    (-78.0, 58.5),  # Inukjuak
    (-77.5, 62.5),  # Cape Wolstenholme
    (-69.5, 58.8),  # Ungava Bay
    (-64.4, 60.4),  # Cape Chidley
    (-61.7, 56.5),  # Nain
    (-55.8, 52.0),  # Strait of Belle Isle
    (-64.2, 48.8),  # Gaspé
    (-60.0, 46.9),  # Cape Breton
    (-63.6, 44.6),  # Halifax
    (-66.1, 43.8),  # Yarmouth
    (-70.2, 43.6),  # Portland
    (-70.0, 41.7),  # Cape Cod
    (-74.0, 40.5),  # New York
    (-75.5, 35.2),  # Cape Hatteras
    (-81.4, 30.3),  # Jacksonville
    (-80.2, 25.8),  # Miami
    (-81.0, 25.1),  # Florida Keys
    (-82.7, 27.8),  # Tampa
    (-84.3, 30.0),  # Apalachee Bay
    (-89.2, 29.1),  # Mississippi delta
    (-94.8, 29.3),  # Galveston
    (-97.2, 25.9),  # Brownsville
    (-96.1, 19.2),  # Veracruz
    (-90.5, 19.8),  # Campeche
    (-86.8, 21.2),  # Cancún
    (-88.2, 17.5),  # Belize
    (-83.2, 15.0),  # Cabo Gracias a Dios
    (-83.5, 12.0),
    (-83.0, 10.0),  # Limón
    (-79.9, 9.4),  # Colón
    (-77.4, 8.7),  # Gulf of Urabá
    (-77.9, 7.2),
    (-80.0, 7.4),  # Punta Mala
    (-82.9, 8.0),  # Punta Burica
    (-85.8, 10.0),  # Nicoya
    (-87.6, 13.2),  # Gulf of Fonseca
    (-91.5, 14.0),
    (-95.2, 16.2),  # Salina Cruz
    (-99.9, 16.8),  # Acapulco
    (-105.7, 20.4),  # Cabo Corrientes
    (-106.4, 23.2),  # Mazatlán
    (-110.9, 27.9),  # Guaymas
    (-114.8, 31.8),  # Colorado delta
    (-110.3, 24.1),  # La Paz
    (-109.9, 22.9),  # Cabo San Lucas
    (-115.0, 27.8),  # Punta Eugenia
    (-117.1, 32.5),  # San Diego
    (-120.5, 34.5),  # Point Conception
    (-122.5, 37.8),  # San Francisco
    (-124.4, 40.4),  # Cape Mendocino
    (-124.7, 48.4),  # Cape Flattery
    (-128.0, 50.8),
    (-130.3, 54.3),  # Prince Rupert
    (-135.3, 57.0),  # Sitka
    (-139.7, 59.5),  # Yakutat
    (-146.0, 60.5),
    (-151.5, 59.2),  # Kenai
    (-156.0, 57.0),
    (-164.0, 54.7),  # tip of the Alaska Peninsula
    (-158.0, 58.7),  # Bristol Bay
    (-165.0, 62.5),  # Yukon delta
    (-165.4, 64.5),  # Nome
)

GREENLAND: Ring = (
    (-43.9, 59.8),  # Cape Farewell
    (-51.7, 64.2),  # Nuuk
    (-53.5, 69.5),  # Disko
    (-56.0, 72.8),  # Upernavik
    (-60.0, 76.0),  # Melville Bay
    (-69.0, 76.5),  # Thule
    (-72.0, 78.5),  # Smith Sound
    (-60.0, 82.0),
    (-33.0, 83.6),  # Cape Morris Jesup
    (-12.0, 81.5),
    (-18.0, 77.0),
    (-22.0, 70.5),  # Scoresby Sund
    (-37.6, 65.6),  # Tasiilaq
)

BAFFIN_ISLAND: Ring = (
    (-65.0, 62.0),
    (-61.3, 66.6),  # Cape Dyer
    (-68.0, 70.5),
    (-78.0, 72.7),  # Pond Inlet
    (-88.0, 73.5),
    (-85.0, 70.0),
    (-78.0, 67.5),
    (-77.5, 64.5),  # Foxe Peninsula
    (-72.0, 62.5),
)

ELLESMERE_ISLAND: Ring = ((-80.0, 76.5), (-62.0, 82.5), (-75.0, 83.0), (-92.0, 81.0), (-90.0, 77.0))

VICTORIA_ISLAND: Ring = ((-119.0, 71.5), (-108.0, 73.0), (-101.0, 70.0), (-105.0, 68.5), (-117.0, 69.5))

NEWFOUNDLAND: Ring = ((-59.4, 47.6), (-55.5, 51.6), (-52.7, 47.5), (-53.6, 46.6), (-56.0, 47.1))

CUBA: Ring = ((-84.9, 21.9), (-82.4, 23.1), (-77.0, 22.3), (-74.1, 20.2), (-77.7, 19.8), (-81.0, 21.7))

HISPANIOLA: Ring = ((-74.4, 18.4), (-72.8, 19.9), (-68.3, 18.6), (-71.4, 17.6))

SOUTH_AMERICA: Ring = (
    (-77.4, 8.7),  # Gulf of Urabá
    (-74.8, 11.0),  # Barranquilla
    (-71.7, 12.4),  # Punta Gallinas
    (-67.0, 10.6),  # Caracas
    (-61.0, 8.6),  # Orinoco delta
    (-58.2, 6.8),  # Georgetown
    (-52.3, 4.9),  # Cayenne
    (-50.0, 0.0),  # Amazon mouth
    (-48.5, -1.4),  # Belém
    (-44.3, -2.5),  # São Luís
    (-38.5, -3.7),  # Fortaleza
    (-35.2, -5.5),  # Natal
    (-34.9, -8.1),  # Recife
    (-38.5, -13.0),  # Salvador
    (-39.0, -17.5),
    (-42.0, -23.0),  # Cabo Frio
    (-46.3, -24.0),  # Santos
    (-48.5, -27.6),  # Florianópolis
    (-52.1, -32.0),  # Rio Grande
    (-55.0, -35.0),  # Punta del Este
    (-58.4, -34.6),  # Buenos Aires
    (-57.5, -38.0),  # Mar del Plata
    (-62.3, -38.8),  # Bahía Blanca
    (-63.6, -42.6),  # Península Valdés
    (-67.5, -45.9),  # Comodoro Rivadavia
    (-69.2, -51.6),  # Río Gallegos
    (-65.1, -54.7),  # Cabo San Diego
    (-67.3, -56.0),  # Cape Horn
    (-74.0, -52.5),
    (-75.5, -48.0),
    (-74.0, -42.5),  # Chiloé
    (-73.4, -39.8),  # Valdivia
    (-73.0, -36.8),  # Concepción
    (-71.6, -33.0),  # Valparaíso
    (-70.4, -23.6),  # Antofagasta
    (-70.3, -18.5),  # Arica
    (-77.1, -12.0),  # Lima
    (-81.3, -4.7),  # Punta Pariñas
    (-80.9, -2.2),  # Santa Elena
    (-79.7, 1.0),  # Esmeraldas
    (-77.1, 3.9),  # Buenaventura
    (-77.5, 5.5),
    (-77.9, 7.2),
)

EURASIA: Ring = (
    (-5.6, 36.0),  # Gibraltar
    (-9.0, 37.0),  # Cabo de São Vicente
    (-9.5, 38.8),  # Cabo da Roca
    (-9.3, 43.0),  # Finisterre
    (-3.8, 43.5),  # Santander
    (-1.2, 44.7),  # Arcachon
    (-4.8, 48.4),  # Brest
    (-1.6, 49.7),  # Cherbourg
    (1.9, 51.0),  # Calais
    (4.8, 53.0),  # Den Helder
    (8.7, 53.9),  # Cuxhaven
    (8.1, 56.5),  # west Jutland
    (10.6, 57.7),  # Skagen
    (10.2, 56.2),  # Aarhus
    (10.9, 54.0),  # Lübeck
    (18.6, 54.4),  # Gdańsk
    (21.1, 55.7),  # Klaipėda
    (24.1, 57.0),  # Riga
    (24.7, 59.4),  # Tallinn
    (30.3, 59.9),  # St Petersburg
    (25.0, 60.2),  # Helsinki
    (22.3, 60.4),  # Turku
    (21.6, 63.1),  # Vaasa
    (25.5, 65.0),  # Oulu
    (22.1, 65.6),  # Luleå
    (20.3, 63.8),  # Umeå
    (17.3, 62.4),  # Sundsvall
    (18.1, 59.3),  # Stockholm
    (16.4, 56.7),  # Kalmar
    (13.0, 55.6),  # Malmö
    (11.9, 57.7),  # Göteborg
    (10.7, 59.0),  # Oslofjord
    (7.0, 58.0),  # Lindesnes
    (5.3, 60.4),  # Bergen
    (6.1, 62.5),  # Ålesund
    (10.0, 64.5),
    (14.4, 67.3),  # Bodø
    (19.0, 69.6),  # Tromsø
    (25.8, 71.2),  # North Cape
    (33.0, 69.3),  # Murmansk
    (41.0, 67.8),
    (43.3, 68.6),  # Kanin Peninsula
    (54.0, 68.5),  # Pechora
    (60.0, 69.5),
    (66.5, 69.2),
    (69.5, 73.5),  # Yamal
    (80.0, 72.5),
    (90.0, 75.5),  # Taymyr
    (104.3, 77.7),  # Cape Chelyuskin
    (112.0, 74.0),  # Khatanga
    (127.0, 73.5),  # Lena delta
    (140.0, 72.5),
    (161.0, 69.6),  # Kolyma
    (170.0, 69.7),  # Pevek
    (-179.0, 68.9),  # Cape Schmidt (across the antimeridian)
    (-169.7, 66.1),  # Cape Dezhnev
    (-173.2, 64.4),  # Provideniya
    (177.5, 64.7),  # Anadyr (back across)
    (179.1, 62.3),  # Cape Navarin
    (170.0, 60.0),
    (162.5, 56.2),  # Ust-Kamchatsk
    (158.7, 53.0),  # Petropavlovsk
    (156.7, 50.9),  # Cape Lopatka
    (156.0, 57.0),
    (150.8, 59.6),  # Magadan
    (143.2, 59.4),  # Okhotsk
    (138.2, 56.4),  # Ayan
    (140.7, 53.2),  # Amur mouth
    (140.3, 49.0),  # Sovetskaya Gavan
    (131.9, 43.1),  # Vladivostok
    (127.4, 39.2),  # Wonsan
    (129.0, 35.1),  # Busan
    (126.4, 34.8),  # Mokpo
    (126.6, 37.5),  # Incheon
    (124.5, 39.8),  # Dandong
    (121.6, 38.9),  # Dalian
    (122.0, 40.8),  # Yingkou
    (117.7, 39.0),  # Tianjin
    (121.4, 37.5),  # Yantai
    (122.5, 37.4),  # Weihai
    (120.3, 36.1),  # Qingdao
    (121.9, 31.2),  # Shanghai
    (121.9, 29.9),  # Ningbo
    (119.6, 26.0),  # Fuzhou
    (118.1, 24.5),  # Xiamen
    (114.2, 22.3),  # Hong Kong
    (110.0, 20.3),  # Leizhou
    (106.7, 20.8),  # Haiphong
    (108.2, 16.1),  # Da Nang
    (109.4, 12.5),  # Cam Ranh
    (107.1, 10.3),  # Vũng Tàu
    (104.8, 8.6),  # Cà Mau
    (100.5, 13.5),  # Bangkok
    (99.3, 10.5),
    (102.2, 6.1),  # Kota Bharu
    (103.3, 3.8),  # Kuantan
    (103.8, 1.3),  # Singapore
    (102.2, 2.2),  # Malacca
    (100.3, 5.4),  # Penang
    (98.3, 7.9),  # Phuket
    (96.2, 16.8),  # Yangon
    (92.9, 20.1),  # Sittwe
    (91.8, 22.3),  # Chittagong
    (88.5, 21.7),  # Sundarbans
    (83.3, 17.7),  # Visakhapatnam
    (80.3, 13.1),  # Chennai
    (79.9, 10.3),  # Point Calimere
    (77.5, 8.1),  # Kanyakumari
    (76.3, 10.0),  # Kochi
    (74.8, 12.9),  # Mangalore
    (72.8, 19.0),  # Mumbai
    (72.6, 21.2),  # Surat
    (71.0, 20.7),  # Diu
    (69.0, 22.2),  # Dwarka
    (67.0, 24.8),  # Karachi
    (62.3, 25.1),  # Gwadar
    (57.8, 25.6),  # Jask
    (56.3, 27.2),  # Strait of Hormuz
    (50.8, 28.9),  # Bushehr
    (48.0, 30.0),  # Shatt al-Arab
    (47.9, 29.4),  # Kuwait
    (50.1, 26.4),  # Dammam
    (51.5, 25.3),  # Qatar
    (54.4, 24.5),  # Abu Dhabi
    (56.3, 26.4),  # Musandam
    (58.6, 23.6),  # Muscat
    (59.8, 22.5),  # Ras al Hadd
    (57.8, 19.0),
    (54.1, 17.0),  # Salalah
    (49.1, 14.5),  # Mukalla
    (45.0, 12.8),  # Aden
    (43.4, 12.7),  # Bab-el-Mandeb
    (42.9, 14.8),  # Hodeidah
    (39.2, 21.5),  # Jeddah
    (38.0, 24.1),  # Yanbu
    (35.0, 29.5),  # Aqaba
    (34.3, 27.8),  # Sharm el-Sheikh
    (32.5, 30.0),  # Suez
    (32.3, 31.3),  # Port Said
    (34.4, 31.5),  # Gaza
    (35.5, 33.9),  # Beirut
    (36.2, 36.6),  # Iskenderun
    (30.7, 36.9),  # Antalya
    (27.4, 37.0),  # Bodrum
    (26.7, 38.5),  # Izmir
    (26.2, 40.0),  # Dardanelles
    (22.9, 40.6),  # Thessaloniki
    (23.7, 37.9),  # Athens
    (22.5, 36.4),  # Cape Matapan
    (21.7, 38.2),  # Patras
    (19.4, 40.5),  # Vlorë
    (18.1, 42.6),  # Dubrovnik
    (16.4, 43.5),  # Split
    (13.8, 45.6),  # Trieste
    (12.3, 45.4),  # Venice
    (13.5, 43.6),  # Ancona
    (16.2, 41.9),  # Gargano
    (18.5, 40.1),  # Otranto
    (17.2, 40.5),  # Taranto
    (15.6, 38.0),  # Reggio Calabria
    (14.2, 40.8),  # Naples
    (12.3, 41.7),  # Ostia
    (8.9, 44.4),  # Genoa
    (7.3, 43.7),  # Nice
    (5.4, 43.3),  # Marseille
    (3.0, 42.7),  # Perpignan
    (2.2, 41.4),  # Barcelona
    (-0.3, 39.5),  # Valencia
    (-0.9, 37.6),  # Cartagena
    (-2.4, 36.8),  # Almería
    (-4.4, 36.7),  # Málaga
)

BLACK_SEA: Ring = (
    (29.0, 41.2),  # Bosporus
    (27.5, 42.5),  # Burgas
    (28.7, 44.2),  # Constanța
    (30.7, 46.5),  # Odesa
    (33.5, 44.6),  # Sevastopol
    (36.5, 45.3),  # Kerch
    (37.8, 44.7),  # Novorossiysk
    (39.7, 43.6),  # Sochi
    (41.6, 41.6),  # Batumi
    (39.7, 41.0),  # Trabzon
    (36.3, 41.3),  # Samsun
    (35.1, 42.0),  # Sinop
    (31.8, 41.5),  # Zonguldak
)

CASPIAN_SEA: Ring = (
    (48.0, 45.8),  # Volga delta
    (51.9, 47.1),  # Atyrau
    (51.2, 43.6),  # Aktau
    (53.0, 40.0),  # Türkmenbaşy
    (54.0, 37.4),
    (49.5, 37.5),  # Bandar Anzali
    (49.9, 40.4),  # Baku
    (47.5, 43.0),  # Makhachkala
)

GREAT_BRITAIN: Ring = (
    (1.4, 51.1),  # Dover
    (-0.1, 50.8),  # Brighton
    (-2.5, 50.5),  # Portland
    (-3.6, 50.2),  # Start Point
    (-5.7, 50.1),  # Land's End
    (-4.5, 51.0),  # Hartland Point
    (-3.0, 51.4),  # Bristol Channel
    (-5.3, 51.9),  # St David's
    (-4.1, 52.5),  # Cardigan Bay
    (-4.5, 53.4),  # Anglesey
    (-3.0, 53.4),  # Liverpool
    (-3.5, 54.9),  # Solway Firth
    (-4.9, 54.6),  # Mull of Galloway
    (-5.8, 55.3),  # Mull of Kintyre
    (-6.2, 56.7),  # Ardnamurchan
    (-5.0, 58.6),  # Cape Wrath
    (-3.1, 58.6),  # Dunnet Head
    (-3.8, 57.6),  # Moray Firth
    (-2.1, 57.1),  # Aberdeen
    (-2.6, 56.0),  # Firth of Forth
    (-1.4, 55.0),  # Newcastle
    (-0.1, 54.1),  # Flamborough Head
    (1.7, 52.7),  # Norfolk
    (1.4, 51.4),  # Thames estuary
)

IRELAND: Ring = (
    (-7.4, 55.4),  # Malin Head
    (-6.1, 55.2),  # Fair Head
    (-6.1, 53.3),  # Dublin
    (-6.4, 52.2),  # Carnsore Point
    (-9.8, 51.4),  # Mizen Head
    (-10.5, 52.1),  # Dingle
    (-9.5, 53.2),  # Galway
    (-10.1, 54.2),  # Erris Head
    (-8.3, 55.1),  # Bloody Foreland
)

ICELAND: Ring = (
    (-22.7, 63.8),  # Reykjanes
    (-24.0, 64.9),  # Snæfellsnes
    (-24.5, 65.6),  # Westfjords
    (-22.4, 66.4),  # Hornstrandir
    (-18.9, 66.2),  # Siglufjörður
    (-16.0, 66.5),  # Melrakkaslétta
    (-14.5, 66.4),  # Langanes
    (-13.5, 65.3),  # East Fjords
    (-15.2, 64.2),  # Höfn
    (-19.0, 63.4),  # Vík
)

NOVAYA_ZEMLYA: Ring = ((51.5, 71.5), (56.0, 70.6), (60.0, 74.0), (68.6, 77.0), (59.0, 75.8), (54.0, 73.5))

SICILY: Ring = ((12.4, 38.1), (15.6, 38.3), (15.1, 36.7), (12.6, 37.6))

SARDINIA: Ring = ((9.2, 41.2), (9.7, 40.0), (9.5, 39.1), (8.4, 38.9), (8.2, 40.7))

CORSICA: Ring = ((9.4, 43.0), (9.6, 42.1), (9.2, 41.4), (8.6, 41.9))

CRETE: Ring = ((23.6, 35.6), (26.3, 35.3), (25.0, 34.9), (23.5, 35.2))

AFRICA: Ring = (
    (-5.8, 35.8),  # Tangier
    (-7.6, 33.6),  # Casablanca
    (-9.6, 30.4),  # Agadir
    (-12.9, 27.9),  # Cape Juby
    (-17.0, 20.8),  # Cap Blanc
    (-17.5, 14.7),  # Cape Verde (Dakar)
    (-15.6, 11.9),  # Bissau
    (-13.7, 9.5),  # Conakry
    (-13.2, 8.5),  # Freetown
    (-7.7, 4.4),  # Cape Palmas
    (-4.0, 5.3),  # Abidjan
    (-0.2, 5.6),  # Accra
    (3.4, 6.4),  # Lagos
    (6.0, 4.3),  # Niger delta
    (9.0, 4.0),  # Bight of Biafra
    (9.4, 0.4),  # Libreville
    (8.7, -0.6),  # Cape Lopez
    (11.9, -4.8),  # Pointe-Noire
    (12.3, -6.0),  # Congo mouth
    (13.2, -8.8),  # Luanda
    (13.4, -12.6),  # Benguela
    (12.1, -15.2),  # Namibe
    (14.5, -22.9),  # Walvis Bay
    (15.2, -26.6),  # Lüderitz
    (16.5, -28.6),  # Orange River mouth
    (18.5, -34.4),  # Cape of Good Hope
    (20.0, -34.8),  # Cape Agulhas
    (25.6, -34.0),  # Port Elizabeth
    (31.0, -29.9),  # Durban
    (32.6, -26.0),  # Maputo
    (35.4, -23.9),  # Inhambane
    (34.8, -19.8),  # Beira
    (36.9, -17.9),  # Quelimane
    (40.7, -15.0),  # Mozambique Island
    (40.6, -10.5),  # Cabo Delgado
    (39.3, -6.8),  # Dar es Salaam
    (39.7, -4.0),  # Mombasa
    (45.3, 2.0),  # Mogadishu
    (51.3, 10.4),  # Hafun
    (51.3, 11.8),  # Cape Guardafui (Horn of Africa)
    (45.0, 10.4),  # Berbera
    (43.1, 11.6),  # Djibouti
    (39.5, 15.6),  # Massawa
    (37.2, 19.6),  # Port Sudan
    (35.5, 24.0),  # Ras Banas
    (33.8, 27.2),  # Hurghada
    (32.5, 30.0),  # Suez
    (32.3, 31.3),  # Port Said
    (29.9, 31.2),  # Alexandria
    (24.0, 32.1),  # Tobruk
    (20.1, 32.1),  # Benghazi
    (19.0, 30.3),  # Gulf of Sidra
    (15.1, 32.4),  # Misrata
    (13.2, 32.9),  # Tripoli
    (10.1, 33.9),  # Gabès
    (11.0, 37.1),  # Cap Bon
    (9.9, 37.3),  # Bizerte
    (3.1, 36.8),  # Algiers
    (-0.6, 35.7),  # Oran
)

MADAGASCAR: Ring = (
    (49.3, -12.0),  # Cap d'Ambre
    (49.4, -18.2),  # Toamasina
    (45.2, -25.6),  # Cap Sainte-Marie
    (43.7, -23.4),  # Toliara
    (44.3, -20.3),  # Morondava
    (46.3, -15.7),  # Mahajanga
)

SRI_LANKA: Ring = ((80.0, 9.8), (81.2, 8.6), (81.9, 7.0), (80.6, 5.9), (79.8, 6.9))

HOKKAIDO: Ring = ((141.9, 45.5), (145.3, 44.3), (145.6, 43.3), (143.2, 41.9), (140.7, 41.8), (141.0, 43.2))

HONSHU: Ring = (
    (141.0, 41.5),  # Ōma
    (141.5, 40.5),  # Hachinohe
    (141.0, 38.3),  # Sendai
    (140.9, 35.7),  # Chōshi
    (139.9, 34.9),  # Bōsō
    (138.8, 34.6),  # Izu
    (136.9, 34.3),  # Shima
    (135.8, 33.4),  # Shionomisaki
    (135.2, 34.6),  # Osaka
    (132.5, 34.3),  # Hiroshima
    (130.9, 34.0),  # Shimonoseki
    (132.6, 35.5),  # Izumo
    (134.2, 35.5),  # Tottori
    (137.2, 37.5),  # Noto
    (139.0, 37.9),  # Niigata
    (140.0, 39.7),  # Akita
    (140.3, 41.2),  # Tsugaru
)

KYUSHU: Ring = ((130.9, 33.9), (131.8, 33.2), (131.4, 31.9), (130.7, 31.0), (129.8, 32.7), (130.4, 33.6))

SHIKOKU: Ring = ((134.7, 34.2), (134.2, 33.2), (133.0, 32.7), (132.7, 33.9), (134.0, 34.35))

SAKHALIN: Ring = (
    (142.2, 54.3),
    (143.2, 52.5),
    (143.6, 48.6),
    (143.1, 46.6),
    (141.9, 45.9),
    (142.0, 48.0),
    (142.2, 51.5),
)

TAIWAN: Ring = ((121.5, 25.3), (121.9, 24.5), (120.85, 21.9), (120.2, 23.0), (121.0, 25.0))

LUZON: Ring = ((120.6, 18.5), (122.2, 18.5), (121.6, 15.8), (124.2, 13.0), (120.6, 14.2), (119.8, 16.3))

MINDANAO: Ring = ((125.5, 9.8), (126.4, 7.5), (125.6, 5.6), (122.0, 6.9), (123.7, 8.0))

SUMATRA: Ring = (
    (95.3, 5.6),  # Banda Aceh
    (98.7, 3.6),  # Medan
    (103.3, 1.0),
    (106.0, -3.0),
    (105.8, -5.9),  # Lampung
    (102.3, -3.8),  # Bengkulu
    (100.3, -0.9),  # Padang
    (96.1, 4.1),  # Meulaboh
)

JAVA: Ring = ((106.0, -5.9), (106.8, -6.1), (110.4, -6.9), (112.7, -7.2), (114.4, -8.2), (110.4, -8.1), (105.2, -6.8))

BORNEO: Ring = (
    (110.3, 1.6),  # Kuching
    (113.0, 3.2),  # Bintulu
    (115.0, 5.0),  # Brunei
    (116.0, 6.0),  # Kota Kinabalu
    (116.8, 7.0),
    (118.1, 5.8),  # Sandakan
    (118.0, 4.2),  # Tawau
    (116.8, -1.3),  # Balikpapan
    (116.5, -3.5),
    (114.6, -3.5),  # Banjarmasin
    (110.2, -2.9),
    (109.3, 0.0),  # Pontianak
)

SULAWESI: Ring = ((124.8, 1.5), (123.0, 0.5), (119.8, -0.9), (119.4, -5.1), (120.4, -5.6), (122.6, -4.0), (122.8, -1.0))

NEW_GUINEA: Ring = (
    (131.0, -1.3),  # Sorong
    (132.0, -0.4),
    (135.0, -3.3),
    (140.7, -2.5),  # Jayapura
    (145.8, -5.2),  # Madang
    (147.0, -6.7),  # Lae
    (150.8, -10.2),  # East Cape
    (147.2, -9.5),  # Port Moresby
    (144.0, -7.8),  # Gulf of Papua
    (140.4, -8.5),  # Merauke
    (138.0, -8.4),
    (133.7, -3.9),
    (132.3, -2.9),  # Fakfak
)

AUSTRALIA: Ring = (
    (142.5, -10.7),  # Cape York
    (145.8, -16.9),  # Cairns
    (146.8, -19.3),  # Townsville
    (149.2, -21.1),  # Mackay
    (153.2, -24.7),  # Sandy Cape
    (153.6, -28.6),  # Byron Bay
    (151.2, -33.9),  # Sydney
    (150.0, -37.5),  # Cape Howe
    (146.4, -39.1),  # Wilsons Promontory
    (144.6, -38.3),  # Port Phillip
    (143.5, -38.9),  # Cape Otway
    (140.5, -38.0),
    (138.5, -35.6),
    (137.8, -33.0),  # Spencer Gulf
    (135.8, -34.9),  # Eyre Peninsula
    (133.7, -32.1),  # Ceduna
    (129.0, -31.7),  # Great Australian Bight
    (121.9, -33.9),  # Esperance
    (117.9, -35.0),  # Albany
    (115.1, -34.4),  # Cape Leeuwin
    (115.7, -32.0),  # Perth
    (114.6, -28.8),  # Geraldton
    (113.2, -26.2),  # Steep Point
    (114.0, -21.8),  # North West Cape
    (118.6, -20.3),  # Port Hedland
    (122.2, -18.0),  # Broome
    (126.6, -13.8),  # Cape Londonderry
    (128.1, -15.3),  # Joseph Bonaparte Gulf
    (129.8, -14.8),
    (130.8, -12.4),  # Darwin
    (136.9, -12.3),  # Cape Arnhem
    (135.8, -15.0),
    (140.8, -17.5),  # Karumba
    (141.9, -12.7),  # Weipa
)

TASMANIA: Ring = ((144.7, -40.7), (148.3, -40.9), (148.2, -42.4), (146.8, -43.6), (145.2, -42.2))

NEW_ZEALAND_NORTH: Ring = (
    (172.7, -34.4),  # Cape Reinga
    (174.8, -36.8),  # Auckland
    (178.5, -37.7),  # East Cape
    (177.0, -39.3),  # Hawke Bay
    (175.3, -41.6),  # Cape Palliser
    (174.8, -41.3),  # Wellington
    (173.8, -39.2),  # Taranaki
    (174.0, -36.4),
)

NEW_ZEALAND_SOUTH: Ring = (
    (172.7, -40.5),  # Farewell Spit
    (174.3, -41.7),  # Cape Campbell
    (173.0, -43.8),  # Banks Peninsula
    (170.5, -45.9),  # Dunedin
    (168.9, -46.6),  # Slope Point
    (166.5, -45.8),  # Fiordland
    (171.2, -42.5),  # Greymouth
)

ANTARCTICA: Ring = (
    (-180.0, -78.4),  # Ross Ice Shelf
    (-160.0, -78.5),
    (-150.0, -77.0),
    (-140.0, -75.0),
    (-120.0, -73.5),
    (-100.0, -73.0),
    (-80.0, -73.0),
    (-68.0, -70.0),
    (-57.0, -63.3),  # tip of the Antarctic Peninsula
    (-62.0, -66.0),
    (-60.0, -75.0),  # Weddell Sea
    (-40.0, -78.0),  # Filchner Ice Shelf
    (-30.0, -76.0),
    (-20.0, -73.5),
    (-10.0, -71.0),
    (0.0, -70.0),
    (20.0, -70.0),
    (40.0, -69.0),
    (60.0, -67.0),
    (80.0, -67.0),
    (90.0, -66.5),
    (110.0, -66.0),
    (130.0, -66.0),
    (150.0, -68.5),
    (170.3, -71.3),  # Cape Adare
    (165.0, -76.0),
    (168.0, -78.0),
)

WORLD_OUTLINE: dict[str, Ring] = {
    "North America": NORTH_AMERICA,
    "Greenland": GREENLAND,
    "Baffin Island": BAFFIN_ISLAND,
    "Ellesmere Island": ELLESMERE_ISLAND,
    "Victoria Island": VICTORIA_ISLAND,
    "Newfoundland": NEWFOUNDLAND,
    "Cuba": CUBA,
    "Hispaniola": HISPANIOLA,
    "South America": SOUTH_AMERICA,
    "Eurasia": EURASIA,
    "Black Sea": BLACK_SEA,
    "Caspian Sea": CASPIAN_SEA,
    "Great Britain": GREAT_BRITAIN,
    "Ireland": IRELAND,
    "Iceland": ICELAND,
    "Novaya Zemlya": NOVAYA_ZEMLYA,
    "Sicily": SICILY,
    "Sardinia": SARDINIA,
    "Corsica": CORSICA,
    "Crete": CRETE,
    "Africa": AFRICA,
    "Madagascar": MADAGASCAR,
    "Sri Lanka": SRI_LANKA,
    "Hokkaido": HOKKAIDO,
    "Honshu": HONSHU,
    "Kyushu": KYUSHU,
    "Shikoku": SHIKOKU,
    "Sakhalin": SAKHALIN,
    "Taiwan": TAIWAN,
    "Luzon": LUZON,
    "Mindanao": MINDANAO,
    "Sumatra": SUMATRA,
    "Java": JAVA,
    "Borneo": BORNEO,
    "Sulawesi": SULAWESI,
    "New Guinea": NEW_GUINEA,
    "Australia": AUSTRALIA,
    "Tasmania": TASMANIA,
    "New Zealand (North Island)": NEW_ZEALAND_NORTH,
    "New Zealand (South Island)": NEW_ZEALAND_SOUTH,
    "Antarctica": ANTARCTICA,
}
"""Closed rings of ``(lon, lat)`` degrees by name (two inland seas included, drawn the same way)."""
