from afetch._entry import main

raise SystemExit(main())
