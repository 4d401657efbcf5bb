"""The partner side: sending feeds into the network (SDK, `cwn produce`) and checking them offline
(`cwn parse`)."""
