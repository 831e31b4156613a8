guest_image() { echo "todo"; }
