"""Word lists for core.data.synth: category vocabularies that make titles and texts readable.

Keywords of a category recur in its items' texts, so a language model's text embedding
clusters items by category.
"""

# category -> (adjective used in texts, keywords, show/guide nouns, products, accessories)
# Lists are "|"-separated to keep the table compact.
CATEGORIES: dict[str, tuple[str, str, str, str, str]] = {
    "Cooking": (
        "cooking",
        "recipes|pasta|spices|baking|knife skills|sourdough|grilling|sauces|kitchen|dumplings",
        "Kitchen|Pantry|Skillet|Oven|Table|Spoon",
        "Chef Knife|Cast Iron Pan|Stand Mixer|Spice Grinder|Dutch Oven|Pasta Maker",
        "Sharpening Stone|Cleaning Brush|Dough Hook|Refill Jars|Lid Set|Drying Rack",
    ),
    "Fitness": (
        "fitness",
        "running|workouts|marathon training|stretching|strength|cardio|trail running|yoga|"
        "recovery|interval training",
        "Finish Line|Pace|Circuit|Reps|Stride|Summit",
        "Trail Running Shoes|Yoga Mat|Fitness Tracker|Kettlebell|Foam Roller|Rowing Machine",
        "Insoles|Carry Strap|Charging Cable|Grip Gloves|Travel Bag|Seat Cushion",
    ),
    "Tech": (
        "technology",
        "smartphones|laptops|software|batteries|chips|gadgets|coding|cloud|wearables|smart home",
        "Circuit Board|Byte|Kernel|Signal|Pixel|Server Room",
        "Wireless Earbuds|Laptop Stand|Smartwatch|Mechanical Keyboard|Webcam|Power Bank",
        "Charging Case|USB-C Hub|Spare Strap|Keycap Set|Privacy Cover|Fast Charger",
    ),
    "Travel": (
        "travel",
        "travel|islands|road trips|backpacking|hotels|city breaks|flights|beaches|"
        "mountains|camping",
        "Road|Harbor|Passport|Compass|Horizon|Journey",
        "Carry-On Suitcase|Travel Backpack|Camping Tent|Neck Pillow|Hiking Poles|Dry Bag",
        "Luggage Tag|Rain Cover|Ground Sheet|Eye Mask|Rubber Tips|Shoulder Strap",
    ),
    "Gaming": (
        "gaming",
        "video games|consoles|esports|speedruns|boss fights|controllers|open worlds|"
        "strategy games|indie games|streaming",
        "Respawn|Boss Level|Controller|Quest|Arcade|Pixel Knight",
        "Game Controller|Gaming Headset|Gaming Mouse|Console Stand|Racing Wheel|Capture Card",
        "Thumb Grips|Mic Filter|Mouse Pad|Cooling Fan|Pedal Set|HDMI Cable",
    ),
    "Music": (
        "music",
        "guitar|albums|concerts|songwriting|drums|jazz|vinyl|piano|music production|choirs",
        "Chord|Encore|Backstage|Vinyl|Melody|Stage",
        "Acoustic Guitar|Studio Headphones|Digital Piano|Record Player|Snare Drum|Microphone",
        "Guitar Strings|Ear Pads|Sustain Pedal|Stylus|Drum Sticks|Pop Filter",
    ),
    "Science": (
        "science",
        "physics|space|planets|wildlife|oceans|chemistry|evolution|climate|telescopes|fossils",
        "Cosmos|Lab|Frontier|Orbit|Deep Sea|Fossil",
        "Telescope|Microscope|Chemistry Set|Star Projector|Weather Station|Binoculars",
        "Eyepiece Kit|Slide Set|Refill Pack|Lens Cap|Sensor Mount|Harness",
    ),
    "Finance": (
        "personal finance",
        "budgeting|investing|savings|stocks|mortgages|taxes|pensions|index funds|"
        "credit scores|side income",
        "Ledger|Bull Market|Budget|Vault|Interest|Dividend",
        "Budget Planner|Coin Safe|Calculator|Wallet|Ledger Book|Money Clip",
        "Planner Refill|Key Lock|Battery Pack|Card Sleeve|Pen Set|Card Holder",
    ),
    "Fashion": (
        "fashion",
        "style|outfits|skincare|sneakers|fabrics|streetwear|tailoring|accessories|"
        "makeup|seasonal trends",
        "Runway|Stitch|Wardrobe|Closet|Catwalk|Thread",
        "Leather Sneakers|Wool Coat|Skincare Set|Denim Jacket|Silk Scarf|Sunglasses",
        "Shoe Cleaner|Garment Bag|Refill Serum|Patch Kit|Scarf Ring|Glasses Case",
    ),
    "Home & Garden": (
        "home and garden",
        "gardening|furniture|houseplants|renovation|diy|compost|interior design|"
        "vegetable beds|tools|lighting",
        "Garden|Greenhouse|Workshop|Porch|Attic|Backyard",
        "Garden Hose|Cordless Drill|Raised Bed|Floor Lamp|Pruning Shears|Plant Stand",
        "Spray Nozzle|Drill Bits|Soil Liner|Light Bulb|Blade Oil|Drip Tray",
    ),
    "Kids & Family": (
        "family",
        "parenting|toddlers|bedtime stories|toys|school|family trips|crafts|"
        "kids activities|homework|board games",
        "Playground|Treehouse|Story Time|Lunchbox|Nursery|Sandbox",
        "Building Blocks|Kids Scooter|Story Book Set|Baby Monitor|Craft Kit|Board Game",
        "Storage Box|Safety Helmet|Bookmark Set|Wall Mount|Glitter Refill|Expansion Pack",
    ),
    "Crime & Mystery": (
        "crime and mystery",
        "detectives|murder cases|investigations|thrillers|suspects|clues|cold cases|"
        "courtrooms|heists|true crime",
        "Silent Harbor|Cold Case|Alibi|Last Witness|Night Shift|Locked Room",
        "",
        "",
    ),
}
ADJECTIVES = "Silent|Golden|Midnight|Hidden|Wild|Bright|Rustic|Secret|Last|Little|Modern|Quiet"
BRANDS = "Northwind|Apex|Lumen|Kestrel|Orbit|Summit|Nova|Harbor|Vertex|Alder"
SUFFIXES = "|Pro|Lite|Max|2|Plus|Mini|Sport"
CLIP_KINDS = "Quick Tips|Highlights|Explained|Live|Challenge|Behind the Scenes|in 60 Seconds"
ARTICLE_KINDS = (
    "Why {} Matters|Ten Ideas About {}|How to Start With {}|{}: What Changed|"
    "A Beginner's Look at {}|{} Myths, Debunked|The Case for {}"
)
