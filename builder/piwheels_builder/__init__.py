"""piwheels-builder: claims jobs from the farm, builds wheels, uploads them."""
