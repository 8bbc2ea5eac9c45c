from townlet_tools.bench import main

raise SystemExit(main())
