// Zachary's karate club: 34 members, 78 friendship edges, and the faction each member joined after the club split.
// Source: W. W. Zachary, "An information flow model for conflict and fission in small groups", Journal of
// Anthropological Research 33(4):452–473, 1977 (matrix E and the "club after split" column of Table 3), as transcribed
// 0-indexed by NetworkX's karate_club_graph() (its `club` attribute: "Mr. Hi" = 0, "Officer" = 1). Public data.
namespace DistTrain.Data.Graphs;

public static class KarateClub
{
    public const int Nodes = 34;
    /// <summary>Node 0 is the instructor (Mr. Hi), node 33 the club's administrator (John A.): the two faction leaders.</summary>
    public const int Instructor = 0, Administrator = 33;

    /// <summary>Each node's higher-numbered neighbours (78 edges in all).</summary>
    private static readonly int[][] Upper =
    [
        /* 0 */ [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 17, 19, 21, 31],
        /* 1 */ [2, 3, 7, 13, 17, 19, 21, 30],
        /* 2 */ [3, 7, 8, 9, 13, 27, 28, 32],
        /* 3 */ [7, 12, 13],
        /* 4 */ [6, 10],
        /* 5 */ [6, 10, 16],
        /* 6 */ [16],
        /* 7 */ [], /* 8 */ [30, 32, 33], /* 9 */ [33], /* 10 */ [], /* 11 */ [], /* 12 */ [], /* 13 */ [33],
        /* 14 */ [32, 33], /* 15 */ [32, 33], /* 16 */ [], /* 17 */ [], /* 18 */ [32, 33], /* 19 */ [33],
        /* 20 */ [32, 33], /* 21 */ [], /* 22 */ [32, 33],
        /* 23 */ [25, 27, 29, 32, 33],
        /* 24 */ [25, 27, 31],
        /* 25 */ [31], /* 26 */ [29, 33], /* 27 */ [33], /* 28 */ [31, 33], /* 29 */ [32, 33], /* 30 */ [32, 33],
        /* 31 */ [32, 33], /* 32 */ [33], /* 33 */ [],
    ];

    /// <summary>The members who stayed with the instructor (Mr. Hi); everyone else followed the officers.</summary>
    private static readonly int[] MrHi = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17, 19, 21];

    public static IEnumerable<(int U, int V)> Edges()
    {
        for (int u = 0; u < Upper.Length; u++)
            foreach (var v in Upper[u]) yield return (u, v);
    }

    /// <summary>Faction after the split: 0 = Mr. Hi, 1 = Officer.</summary>
    public static int[] Factions()
    {
        var labels = new int[Nodes];
        Array.Fill(labels, 1);
        foreach (var v in MrHi) labels[v] = 0;
        return labels;
    }

    /// <summary>The graph with one-hot identity features (X = I), as in Kipf and Welling's karate-club example.</summary>
    public static Graph Create()
    {
        var x = new float[Nodes * Nodes];
        for (int i = 0; i < Nodes; i++) x[i * Nodes + i] = 1f;
        return new Graph("karate", Nodes, Edges(), x, Factions(), 2);
    }
}
