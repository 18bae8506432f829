from afetch.cli.entry import main

raise SystemExit(main())
